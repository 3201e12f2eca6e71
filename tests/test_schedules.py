"""Schedules and priorities, attacked: many schedulers and workers over many tenants must run each (tenant, slot)
exactly once with no slot skipped; downtime must cost one run, not one per missed slot; priority must order claims
within a tenant without starving another tenant. Real processes, real PostgreSQL, real SQLite files."""
import asyncio, os, subprocess, sys, time
from collections import Counter
from pathlib import Path
import pytest
from fh_saas.scheduler import Scheduler
from fh_saas.schedules import Schedule, SCHEDULES
from fh_saas.utils_bgtsk import BackgroundTaskManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tests'))
from apps import sched_tasks   # the tasks and the 'tick' schedule (not declared: passed to each Scheduler here)

@pytest.fixture(autouse=True)
def no_declared_schedules():
    "Nothing here may leave a schedule declared: every later scheduler of this process would keep it."
    before = dict(SCHEDULES)
    yield
    assert SCHEDULES == before, f"a test left schedules declared: {set(SCHEDULES) - set(before)}"

def runs(log:Path) -> list[tuple[str, str, float]]:
    if not log.exists(): return []
    return [(a, b, float(c)) for a, b, c in (l.split() for l in log.read_text().splitlines())]

def slot_jobs(host, tenant):
    "The tenant's schedule jobs: key -> job."
    return {j.idem_key: j for j in BackgroundTaskManager(host.url(tenant)).list_jobs(job_type='tick', limit=1000)}

def test_two_schedulers_and_two_workers_run_each_slot_once(pg_server, tmp_path, monkeypatch):
    from fh_saas.pg import PgHost
    db = f"sched{os.getpid()}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    tenants = [f"t{i:02d}" for i in range(20)]
    for t in tenants: host.create(t)
    log = tmp_path/'runs.log'
    monkeypatch.setenv('EXEC_LOG', str(log))
    env = dict(os.environ, EXEC_LOG=str(log), PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]))
    out = open(tmp_path/'workers.log', 'ab')
    workers = [subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', '--url', host.conninfo, '--imports', 'apps.sched_tasks,apps.sched_declared',
                                 '--poll', '0.3', '--concurrency', '8', '--grace', '3'], env=env, stdout=out, stderr=out)
               for _ in range(2)]
    async def two_schedulers():
        s1 = Scheduler(host, poll=0.3, concurrency=4, schedules=[sched_tasks.TICK])
        s2 = Scheduler(host, poll=0.3, concurrency=4, schedules=[sched_tasks.TICK])
        async with s1.running(), s2.running(): await asyncio.sleep(10)
    try:
        start = time.time()
        asyncio.run(two_schedulers())
        end = time.time()
    finally:
        for p in workers: p.terminate()
        for p in workers: p.wait(20)
    per_job = Counter(job_id for job_id, _, _ in runs(log))
    assert per_job and max(per_job.values()) == 1, f"a slot's job ran twice: {[j for j, n in per_job.items() if n > 1]}"
    pids = {pid for _, pid, _ in runs(log)}
    assert len(pids) >= 2, f"only {pids} ran slots: the workers and the schedulers should share them"
    tick = sched_tasks.TICK
    want = [s for s in range(int(start) + 2, int(end) - 1)]      # whole seconds well inside the run
    for t in tenants:
        rows = BackgroundTaskManager(host.url(t)).list_jobs(job_type='tick', limit=1000)
        dup = [at for at, n in Counter(j.run_at for j in rows).items() if n > 1]
        assert not dup, f"tenant {t}: more than one job for the slots {dup}"
        jobs = slot_jobs(host, t)
        ran = {k for k, j in jobs.items() if j.id in per_job}
        missing = [s for s in want if tick.key(s) not in ran]
        assert not missing, (f"tenant {t}: slots never ran: {missing}: "
                             f"{[(s, jobs[tick.key(s)].status if tick.key(s) in jobs else 'never written') for s in missing]}")
        assert all(per_job[j.id] == 1 for k, j in jobs.items() if j.status == 'completed'), t

def test_downtime_of_five_slots_costs_one_run(host, tmp_path, monkeypatch):
    log = tmp_path/'runs.log'
    monkeypatch.setenv('EXEC_LOG', str(log))
    host.create('acme')
    tick = sched_tasks.TICK
    async def run_for(secs):
        async with Scheduler(host, poll=0.2, schedules=[tick]).running(): await asyncio.sleep(secs)
    asyncio.run(run_for(2.5))
    stopped = time.time()
    time.sleep(5.5)                                  # five slots pass with nothing running
    restart = time.time()
    asyncio.run(run_for(1.0))
    jobs = {j.id: j for j in slot_jobs(host, 'acme').values()}
    after = [jobs[i] for i, _, at in runs(log) if at > stopped]
    missed = [j for j in after if tick.slot_of(j.idem_key) <= restart]
    assert len(missed) == 1, (f"slots due during the downtime that ran after it: {[j.idem_key for j in missed]}; "
                              f"stopped {stopped:.1f}, restart {restart:.1f}, jobs: "
                              f"{[(j.idem_key[-9:], j.status, j.run_at, j.attempt) for j in jobs.values()]}, runs {runs(log)}")
    downtime_keys = {tick.key(s) for s in range(int(stopped) + 1, int(restart) + 1)}
    assert len(downtime_keys & set(slot_jobs(host, 'acme'))) == 1, "a job was written for more than one missed slot"

def test_priority_orders_claims_within_a_tenant_and_fairness_holds(host, tmp_path, monkeypatch):
    log = tmp_path/'runs.log'
    monkeypatch.setenv('EXEC_LOG', str(log))
    for t in ('acme', 'globex'): host.create(t)
    acme, globex = BackgroundTaskManager(host.url('acme')), BackgroundTaskManager(host.url('globex'))
    low = [acme.enqueue('work', sched_tasks.work, dict(tag='acme-low'), priority=-5)[0] for _ in range(6)]
    high = [acme.enqueue('work', sched_tasks.work, dict(tag='acme-high'), priority=10)[0] for _ in range(6)]
    other = [globex.enqueue('work', sched_tasks.work, dict(tag='globex'))[0] for _ in range(3)]
    async def drain():
        async with Scheduler(host, poll=0.2, concurrency=1, per_tenant=1, schedules=()).running():
            for _ in range(300):
                if acme.count_jobs(status='completed') + globex.count_jobs(status='completed') == 15: return
                await asyncio.sleep(0.05)
    asyncio.run(drain())
    order = [tag for _, tag, _ in sorted(runs(log), key=lambda r: r[2])]
    assert len(order) == 15, order
    mine = [t for t in order if t.startswith('acme')]
    assert mine == ['acme-high'] * 6 + ['acme-low'] * 6, f"acme's jobs ran in this order: {mine}"
    first_globex = order.index('globex')
    assert first_globex < order.index('acme-low'), f"globex waited behind acme's whole queue: {order}"

def test_bad_schedules_and_priorities_are_refused_and_write_nothing(tmp_path):
    with pytest.raises(ValueError, match='explicit time zone'): Schedule('n', sched_tasks.tick, cron='0 3 * * *')
    with pytest.raises(ValueError, match='bad cron'): Schedule('n', sched_tasks.tick, cron='0 3 * *', tz='UTC')
    with pytest.raises(ValueError, match='at least'): Schedule('n', sched_tasks.tick, every=0)
    m = BackgroundTaskManager(str(tmp_path/'acme.db'), create=True)
    for bad in (1000, -101, 2.5, True, '5', None):
        with pytest.raises(ValueError, match='priority must be'):
            m.enqueue('work', sched_tasks.work, dict(tag='x'), priority=bad)
    assert m.count_jobs() == 0

def test_the_tenant_dashboard_shows_its_schedules_and_their_next_run(tmp_path):
    from fasthtml.common import fast_app
    from starlette.testclient import TestClient
    from fh_saas.db_host import SqliteHost
    from fh_saas.schedules import ensure
    from fh_saas.ui import mount_jobs
    host = SqliteHost(tmp_path/'tenants')
    for t in ('acme', 'globex'): host.create(t)
    nightly = Schedule('nightly', sched_tasks.tick, cron='0 3 * * *', tz='Europe/Berlin', tenants=['acme'])
    slot, job_id = ensure(nightly, BackgroundTaskManager(host.url('acme')), time.time())
    app, _ = fast_app()
    def who(req): return req.headers.get('x-tenant')
    mount_jobs(app, tenant_of=who, host=host, schedules=[nightly, sched_tasks.TICK])
    cli = TestClient(app)
    acme = cli.get('/jobs', headers={'x-tenant': 'acme'}).text
    assert 'nightly' in acme and f'/jobs/{job_id}' in acme, 'the next run links the pending slot job'
    from datetime import datetime, timezone
    assert datetime.fromtimestamp(slot, timezone.utc).strftime('%Y-%m-%d %H:%M:%S') in acme
    globex = cli.get('/jobs', headers={'x-tenant': 'globex'}).text
    assert 'nightly' not in globex and 'tick' in globex, "a schedule for acme only is not shown to globex"
