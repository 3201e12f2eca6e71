"Worker processes on PostgreSQL: exactly once without failures, nothing lost when a worker or the server dies."
import os, sys, signal, subprocess, time
from collections import Counter
from pathlib import Path
import pytest
from conftest import ROOT, exec_runs, wait_for
from apps.pg_tasks import work
from fh_saas.pg import PgHost
from fh_saas.utils_bgtsk import BackgroundTaskManager

TENANTS = [f"t{k:02d}" for k in range(20)]

@pytest.fixture
def pg_host(pg_server):
    db = f"w{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    return PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)

def enqueue(host, n, ms=0):
    "n jobs spread over the 20 tenants, enqueued only (web side with run_here=False); `ms`: a job's length, or `ms(k)`."
    mgrs = [BackgroundTaskManager(host.create(t), run_here=False) for t in TENANTS]
    return [mgrs[k % len(mgrs)].submit('work', work, ms=ms(k) if callable(ms) else ms)[0] for k in range(n)], mgrs

def start_workers(host, n, log, tmp_path, **opts):
    env = dict(os.environ, EXEC_LOG=str(log), PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in dict(dict(concurrency=8, poll=1, lease=3, grace=5, imports='apps.pg_tasks'), **opts).items()]
    out = open(tmp_path/'workers.log', 'ab')
    return [subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', '--url', host.conninfo, *args],
                             env=env, stdout=out, stderr=out) for _ in range(n)]

def completed(mgrs): return sum(m.count_jobs(status='completed') for m in mgrs)

def stop(procs):
    for p in procs:
        if p.poll() is None: p.send_signal(signal.SIGTERM)
    return [p.wait(30) for p in procs]

def test_4_workers_10000_jobs_20_tenants_exactly_once(pg_host, tmp_path):
    log = tmp_path/'exec.log'
    ids, mgrs = enqueue(pg_host, 10_000)
    procs = start_workers(pg_host, 4, log, tmp_path)
    try: wait_for(lambda: completed(mgrs) == 10_000, timeout=240, every=0.5, msg='10,000 completed')
    finally: codes = stop(procs)
    assert codes == [0, 0, 0, 0]                    # SIGTERM: a clean stop
    runs = exec_runs(log, ids)
    assert set(runs) == set(ids) and set(runs.values()) == {1}   # every job ran, each exactly once
    assert sum(m.count_jobs() for m in mgrs) == 10_000

def test_a_killed_workers_jobs_are_rescued(pg_host, tmp_path):
    log = tmp_path/'exec.log'
    # jobs of unequal lengths: a worker's claimed jobs end one by one, so it holds some whenever it is killed (jobs of
    # one length end together, and a kill landing between their grouped finish and the next claim found none held)
    ids, mgrs = enqueue(pg_host, 3_000, ms=lambda k: 20 + 20 * (k % 5))
    procs = start_workers(pg_host, 4, log, tmp_path)
    try:
        held = lambda: sum(1 for m in mgrs for j in m.list_jobs(status='running', limit=100)
                           if (j.worker or '').split(':')[1:2] == [str(procs[0].pid)])
        wait_for(lambda: completed(mgrs) >= 300 and held() >= 4, timeout=60, every=0.01, msg='work under way, 4 jobs of it in worker 0')
        procs[0].send_signal(signal.SIGKILL); procs[0].wait(10)
        assert completed(mgrs) < 3_000
        wait_for(lambda: completed(mgrs) == 3_000, timeout=120, every=0.5, msg='all completed after the kill')
    finally: stop(procs)   # the killed one is skipped
    runs = exec_runs(log, ids)
    assert set(runs) == set(ids)                    # none lost
    rescued = [j for m in mgrs for j in m.list_jobs(limit=1000) if j.retry_count > 0]
    assert rescued, "the killed worker held no job: the test proved nothing"
    assert all(any(e['error'].startswith('LeaseExpired') for e in j.error_log) for j in rescued)
    print(f"\nkilled worker: {len(rescued)} jobs rescued, {sum(v - 1 for v in runs.values())} extra executions")

def test_postgres_restart_mid_run_loses_nothing(pg_host, pg_server, tmp_path):
    log = tmp_path/'exec.log'
    ids, mgrs = enqueue(pg_host, 2_000, ms=50)
    procs = start_workers(pg_host, 2, log, tmp_path)
    try:
        wait_for(lambda: completed(mgrs) >= 300, timeout=60, msg='work under way')
        pg_server.restart(down_for=2)
        assert completed(mgrs) < 2_000
        wait_for(lambda: completed(mgrs) == 2_000, timeout=180, every=0.5, msg='all completed after the restart')
        assert all(p.poll() is None for p in procs)    # the workers rode it out
    finally: stop(procs)
    assert set(exec_runs(log, ids)) == set(ids)

def test_idle_workers_are_woken_one_at_a_time_and_a_dead_one_loses_nothing(pg_host, tmp_path):
    "Idle workers wait on the idle list and take turns; a worker killed while on the list costs no job."
    import psycopg
    from fh_saas.pg import IDLE_TABLE
    mgrs = [BackgroundTaskManager(pg_host.create(t), run_here=False) for t in TENANTS[:2]]
    procs = start_workers(pg_host, 2, tmp_path/'exec.log', tmp_path, poll=2)
    def idle():
        with psycopg.connect(pg_host.conninfo, autocommit=True) as c:
            return c.execute(f"SELECT channel, pid FROM {IDLE_TABLE}").fetchall()
    def ran_by():
        with psycopg.connect(pg_host.conninfo, autocommit=True) as c:
            return Counter(w.rsplit(':', 1)[0] for t in TENANTS[:2] for (w,) in
                           c.execute(f"SELECT worker FROM tenant_{t}.tenant_jobs WHERE status = 'completed'").fetchall())
    try:
        wait_for(lambda: len(idle()) == 2, timeout=30, msg='both workers on the idle list')
        for k in range(20):   # one at a time: each insert wakes the longest-idle worker, so they take turns
            mgrs[k % 2].submit('work', work)
            wait_for(lambda: completed(mgrs) == k + 1 and len(idle()) == 2, timeout=10, every=0.01, msg=f'job {k} done')
        assert len(ran_by()) == 2, f"one worker ran every job: {ran_by()}"
        procs[0].send_signal(signal.SIGKILL); procs[0].wait(10)   # dies while on the list
        for k in range(10): mgrs[k % 2].submit('work', work)
        wait_for(lambda: completed(mgrs) == 30, timeout=30, every=0.2, msg='every job done after an idle worker died')
        wait_for(lambda: len(idle()) == 1, timeout=10, msg="the dead worker's entry removed")
    finally: stop(procs)   # the killed one is skipped

def test_a_job_handed_back_at_shutdown_is_taken_by_another_worker_at_once(pg_host, tmp_path, monkeypatch):
    "A stopping worker's release wakes an idle worker: with the safety net off and a 60 s lease, nothing else would."
    import anyio
    from fh_saas import scheduler
    from fh_saas.scheduler import Scheduler
    from apps.pg_tasks import nap
    monkeypatch.setattr(scheduler, 'NET_SHARE', 0.0)   # this process never re-reads a schema on its own
    monkeypatch.setenv('EXEC_LOG', str(tmp_path/'exec.log'))
    m = BackgroundTaskManager(pg_host.create('t00'), run_here=False)
    a, = start_workers(pg_host, 1, tmp_path/'exec.log', tmp_path, lease=60, grace=0.5)
    try:
        job = m.submit('nap', nap, seconds=60)[0]
        wait_for(lambda: m.get_job(job).status == 'running', timeout=30, msg='worker A runs the job')
        assert m.get_job(job).worker.split(':')[1] == str(a.pid)
        b = Scheduler(pg_host, poll=0.1, task_modules=['apps.pg_tasks'], lease=60)
        async def go():
            async with b.running():
                while b.unseen: await anyio.sleep(0.05)
                await anyio.sleep(0.5)                          # B idle: on the idle list, nothing due for 60 s
                a.send_signal(signal.SIGTERM)
                await anyio.to_thread.run_sync(a.wait, 30)
                t = time.monotonic()
                while time.monotonic() - t < 10:
                    j = m.get_job(job)
                    if j.status == 'running' and j.worker.split(':')[1] == str(os.getpid()): return time.monotonic() - t
                    await anyio.sleep(0.05)
                return None
        waited = anyio.run(go)
    finally: stop([a])
    assert a.returncode == 0
    assert waited is not None, f"no other worker took the handed-back job in 10 s: {m.get_job(job)}"
    assert m.get_job(job).attempt == 2                      # handed back without counting a retry, run again once

def test_a_job_retried_by_hand_is_taken_by_an_idle_worker_at_once(pg_host, tmp_path, monkeypatch):
    "`retry` of a failed job, in another process, wakes an idle worker: with the safety net off, nothing else would tell it."
    import anyio
    from fh_saas import scheduler
    from fh_saas.scheduler import Scheduler
    monkeypatch.setattr(scheduler, 'NET_SHARE', 0.0)   # this process never re-reads a schema on its own
    monkeypatch.setenv('EXEC_LOG', str(tmp_path/'exec.log'))
    m = BackgroundTaskManager(pg_host.create('t00'), run_here=False)
    job = m.submit('work', work)[0]
    st = m.store
    row = st.claim(job, time.time(), 60, 'elsewhere')                  # another worker ran it, and it failed
    assert st.finish(job, row['attempt'], 'failed', time.time()) == 'failed'
    b = Scheduler(pg_host, poll=0.1, task_modules=['apps.pg_tasks'], lease=60)
    async def go():
        async with b.running():
            while b.unseen: await anyio.sleep(0.05)
            await anyio.sleep(0.5)                          # B idle: on the idle list, nothing due anywhere
            subprocess.run([sys.executable, '-c', 'import sys; from fh_saas.utils_bgtsk import BackgroundTaskManager as M; '
                            'M(sys.argv[1], run_here=False).retry(sys.argv[2])', pg_host.url('t00'), job],
                           check=True, timeout=60)   # from another process: only its wake-up can tell this one
            t = time.monotonic()
            while time.monotonic() - t < 10:
                if m.get_job(job).status == 'completed': return time.monotonic() - t
                await anyio.sleep(0.05)
            return None
    waited = anyio.run(go)
    assert waited is not None, f"no idle worker took the retried job in 10 s: {m.get_job(job)}"

def test_a_watched_store_opens_its_claim_connections_before_its_first_claim(pg_host):
    "Serving a tenant (`watch`) opens the connections its claims use: a worker's first claim never waits for one to be made."
    from fh_saas.pg import _pools
    mgr = BackgroundTaskManager(pg_host.create('acme'), run_here=False)
    jid = mgr.submit('work', work)[0]
    assert (mgr.store.conninfo, True) not in _pools   # no claim yet: the one-tenant claims' pool is not there
    mgr.store.watch(lambda st: None)
    def ready():
        p = _pools.get((mgr.store.conninfo, True))
        return p if p is not None and p.get_stats().get('pool_available', 0) >= 1 else None
    claims = wait_for(ready, timeout=10, msg="the one-tenant claims' connection open after watch")
    made = claims.get_stats().get('connections_num', 0)   # connections the pool has made so far
    assert [r['id'] for r in mgr.store.claim_due(time.time(), 30, 'w', n=1)] == [jid]
    assert claims.get_stats().get('connections_num', 0) == made, "the first claim made a connection of its own"

def test_disconnect_closes_this_process_connections_to_one_server_only(pg_server):
    "`disconnect(conninfo)` closes the pools, the listener and the stores of that server, none of another's."
    import psycopg
    from fh_saas.pg import disconnect
    base = pg_server.url.rsplit('/', 1)[0]
    def conns(db):
        with psycopg.connect(base + '/postgres', autocommit=True) as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [db]).fetchone()[0]
    hosts = {}
    for k in ('a', 'b'):
        db = f"d{k}{os.getpid()}_{time.time_ns() % 10**9}"
        pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
        host = PgHost(base + '/' + db)
        mgr = BackgroundTaskManager(host.create('acme'), run_here=False)
        jid = mgr.submit('work', work)[0]
        mgr.store.claim_due(time.time(), 30, 'w', n=1)   # the claims' pool too
        mgr.store.watch(lambda st: None)                   # and the listener
        hosts[k] = (db, host, mgr, jid)
    (da, ha, ma, ja), (db_, hb, mb, jb) = hosts['a'], hosts['b']
    wait_for(lambda: conns(da) >= 3, msg='a pool, the claims pool and the listener connected')
    nb = conns(db_)
    assert disconnect(ha.conninfo) >= 2
    wait_for(lambda: conns(da) == 0, timeout=5, msg="every connection to the disconnected server's database closed")
    assert conns(db_) == nb and mb.get_job(jb).status == 'running'    # the other server's are untouched and work
    again = BackgroundTaskManager(ha.url('acme'), run_here=False)      # a new store on new pools
    assert again.store is not ma.store and again.get_job(ja).status == 'running'
