"""Fault injection (issue 9): each test tries to break one runner invariant of DESIGN.md, on SQLite and PostgreSQL.

Real processes (workers via `python -m fh_saas.worker`, apps via uvicorn), real signals, real databases. Task bodies
(tests/apps/fault_tasks.py) log `start`/`end` lines with job id, attempt, pid and time to one O_APPEND file."""
import os, sys, json, time, signal, threading, subprocess
from contextlib import contextmanager
import anyio, httpx, pytest
from conftest import ROOT, Server, wait_for
from apps import fault_tasks as ft
from fh_saas.utils_bgtsk import BackgroundTaskManager
from fh_saas.scheduler import Scheduler

FINISHED = ('completed', 'failed', 'cancelled')
PYPATH = os.pathsep.join([str(ROOT), str(ROOT/'tests')])

# ---------------------------------------------------------------------------------------------------------- helpers
def is_pg(host): return type(host).__name__ == 'PgHost'

def manager(host, tenant='acme'):
    "An enqueue-only manager: the test process never runs jobs itself (a worker or an app does)."
    return BackgroundTaskManager(host.create(tenant), run_here=False)

def submit(m, fn, max_retries=3, timeout=None, **kw):
    "Enqueue `fn` under its registered name (a declared task)."
    return m.enqueue(fn.__name__, fn, kw, max_retries=max_retries, timeout=timeout)[0]

def events(log, job_id=None, ev=None):
    if not log.exists(): return []
    out = []
    for l in log.read_text().splitlines():
        try: out.append(json.loads(l))
        except ValueError: pass  # empty, or torn: a write a SIGKILL cut, or one still being written
    return [e for e in out if (job_id is None or e['id'] == job_id) and (ev is None or e['ev'] == ev)]

def runs(log, job_id):
    "Executions of `job_id`'s body: dicts with attempt, pid, start, end (None if it never ended), by start."
    out, evs = [], events(log, job_id)
    for e in evs:
        if e['ev'] != 'start': continue
        end = next((x['t'] for x in evs if x['ev'] == 'end' and x['attempt'] == e['attempt'] and x['pid'] == e['pid']
                    and x['t'] >= e['t']), None)
        out.append(dict(attempt=e['attempt'], pid=e['pid'], start=e['t'], end=end))
    return sorted(out, key=lambda r: r['start'])

def overlap(rs):
    "The first two executions of one job that overlap in time, or None."
    for a, b in zip(rs, rs[1:]):
        if a['end'] is None or b['start'] < a['end']: return a, b
    return None

def job(m, job_id): return m.get_job(job_id)

def wait_finished(m, ids, timeout, alive=None, every=0.1):
    "Wait until every job in `ids` is finished; raise at once if `alive()` says the runner died."
    def check():
        if alive is not None: alive()
        return all(m.get_job(i).status in FINISHED for i in ids)
    try: wait_for(check, timeout=timeout, every=every, msg='jobs finished')
    except TimeoutError:
        states = {i[:8]: (j.status, j.attempt, j.retry_count) for i in ids for j in [m.get_job(i)]}
        raise AssertionError(f"not finished within {timeout} s: (status, attempt, retry_count) = {states}") from None

@pytest.fixture
def procs():
    "Processes a test starts: SIGTERM then SIGKILL at the end, whatever happened."
    ps = []
    yield ps
    for p in ps:
        if p.poll() is None: p.send_signal(signal.SIGTERM)
    for p in ps:
        try: p.wait(15)
        except subprocess.TimeoutExpired: p.kill(); p.wait(5)

def worker(host, tmp_path, procs, name='w', **opts):
    "A `fh_saas.worker` process over `host`, with the fault tasks imported; CLI defaults unless `opts` says."
    env = dict(os.environ, EXEC_LOG=str(tmp_path/'exec.log'), PYTHONPATH=PYPATH)
    src = ['--url', host.conninfo] if is_pg(host) else ['--sqlite-dir', str(host.data_dir)]
    args = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    out = open(tmp_path/f'{name}.log', 'ab')
    p = subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', *src, '--imports', 'apps.fault_tasks', *args],
                         env=env, stdout=out, stderr=out)
    out.close()
    procs.append(p)
    return p

def app_server(host, tmp_path, **env):
    "A uvicorn process serving tests/apps/fault_app.py (Scheduler in its lifespan) over `host`."
    src = dict(FAULT_PG_URL=host.conninfo) if is_pg(host) else dict(FAULT_SQLITE_DIR=str(host.data_dir))
    env = {k: str(v) for k, v in dict(src, EXEC_LOG=str(tmp_path/'exec.log'), **env).items()}
    return Server('apps.fault_app:create_app', env, log=tmp_path/'server.log').start()

def log_tail(path, n=1500):
    return path.read_text(errors='replace')[-n:] if path.exists() else ''

# ------------------------------------------------------------------- 1. no double run without a crash (claim = own)
def test_1_two_workers_short_lease_no_double_run(host, tmp_path, procs):
    "CLI defaults (concurrency 32, per tenant 8), lease 1 s, 64 jobs of 3 s on 2 tenants, 2 workers: every job once."
    log = tmp_path/'exec.log'
    ms = [manager(host, t) for t in ('acme', 'globex')]
    ids = [(m, submit(m, ft.f_sleep, s=3)) for k in range(64) for m in [ms[k % 2]]]
    ws = [worker(host, tmp_path, procs, f'w{k}', lease=1) for k in range(2)]
    alive = lambda: all(w.poll() is None for w in ws) or pytest.fail(f"a worker died: {log_tail(tmp_path/'w0.log')}")
    try:
        wait_for(lambda: alive() and all(m.get_job(i).status in FINISHED for m, i in ids), timeout=60, every=0.25)
    except TimeoutError: pass  # judged below: duplicates first, they are the point
    starts = [(e['id'], e['attempt']) for e in events(log, ev='start')]
    twice = {i for i, _ in starts if sum(1 for x, _ in starts if x == i) > 1}
    assert not twice, (f"{len(twice)} of 64 jobs ran their body more than once with every process alive "
                       f"(e.g. attempts {[a for i, a in starts if i == next(iter(twice))]})")
    assert len(set(starts)) == len(starts), "one (job, attempt) ran twice"
    final = [m.get_job(i) for m, i in ids]
    assert [j.status for j in final] == ['completed'] * 64
    assert {j.attempt for j in final} == {1} and {j.retry_count for j in final} == {0}
    assert all(w.poll() is None for w in ws)

# ------------------------------------------------------------------------- 2. no task takes the runner down
BAD = (ft.f_exit, ft.f_interrupt, ft.f_cancel_self, ft.f_bad_str)

@pytest.mark.parametrize('runner', ['app', 'worker'])
def test_2_no_task_takes_the_runner_down(host, tmp_path, procs, runner):
    "SystemExit, KeyboardInterrupt, a self-raised CancelledError and an unprintable exception: failed attempts, counted."
    m = manager(host)
    if runner == 'app':
        srv = app_server(host, tmp_path)
        proc, out = srv.proc, tmp_path/'server.log'
    else:
        proc, out = worker(host, tmp_path, procs, lease=30, poll=0.5), tmp_path/'w.log'
    def alive():
        if proc.poll() is not None: pytest.fail(f"the {runner} process died (exit {proc.returncode}): {log_tail(out)}")
    try:
        bad = {fn.__name__: submit(m, fn, max_retries=1) for fn in BAD}
        try: wait_finished(m, bad.values(), timeout=25, alive=alive)
        except AssertionError as e:
            alive(); raise AssertionError(f"{e} -- names: {[(n, i[:8]) for n, i in bad.items()]}") from None
        got = {n: (j.status, j.retry_count, j.attempt) for n, i in bad.items() for j in [m.get_job(i)]}
        assert got == {n: ('failed', 1, 2) for n in bad}, got   # each a failed attempt counted as a retry
        alive()
        if runner == 'app':
            r = httpx.get(srv.url + '/health', timeout=10)
            assert r.status_code == 200
        ok = submit(m, ft.f_quick, tag='after')
        wait_finished(m, [ok], timeout=15, alive=alive)
        assert m.get_job(ok).status == 'completed'
        alive()
    finally:
        if runner == 'app': srv.stop()

# ------------------------------------------------------------------------------------------ 3. cancel is sticky
def _started(log, job_id, timeout=20):
    return wait_for(lambda: events(log, job_id, 'start'), timeout=timeout, msg='the body started')[0]

def test_3a_cancel_then_attempt_raises(host, tmp_path, procs):
    "Cancel a running job whose attempt then raises: it ends cancelled, not retried."
    log, gate = tmp_path/'exec.log', tmp_path/'gate'
    m = manager(host)
    w = worker(host, tmp_path, procs, lease=3, poll=0.5)
    jid = submit(m, ft.f_raise_at_gate, max_retries=2, gate=str(gate))
    _started(log, jid)
    assert m.cancel(jid) == 'running'
    time.sleep(1.2)           # the runner has renewed its lease since: it knows of the request
    gate.write_text('go')     # now the attempt raises
    wait_finished(m, [jid], timeout=20)
    time.sleep(2.5)           # a retry would be due 2 s after the failure
    j = m.get_job(jid)
    assert j.status == 'cancelled', (j.status, j.attempt, j.error)
    assert len(events(log, jid, 'start')) == 1, f"body ran {len(events(log, jid, 'start'))} times after the cancel"
    assert w.poll() is None

def test_3b_cancel_then_runner_killed_and_rescued(host, tmp_path, procs):
    "Cancel a job running in worker A, SIGKILL A; worker B rescues the lease: cancelled, the body not run again."
    log = tmp_path/'exec.log'
    m = manager(host)
    a = worker(host, tmp_path, procs, 'a', lease=1, poll=0.5)
    jid = submit(m, ft.f_sleep, max_retries=2, s=3)
    assert _started(log, jid)['pid'] == a.pid
    assert m.cancel(jid) == 'running'
    a.send_signal(signal.SIGKILL); a.wait(10)
    b = worker(host, tmp_path, procs, 'b', lease=1, poll=0.5)
    wait_finished(m, [jid], timeout=25)
    time.sleep(1.0)
    j = m.get_job(jid)
    assert j.status == 'cancelled', (j.status, j.attempt, j.error)
    assert [e['pid'] for e in events(log, jid, 'start')] == [a.pid], "the rescued job ran again"
    assert b.poll() is None

def test_3c_cancel_during_a_sync_timeout(host, tmp_path, procs):
    "Cancel a sync job with a timeout before the timeout hits (long lease: the runner learns late): no retry."
    log = tmp_path/'exec.log'
    m = manager(host)
    worker(host, tmp_path, procs, lease=30, poll=0.5)
    jid = submit(m, ft.f_sleep, max_retries=2, timeout=1.5, s=3)
    _started(log, jid)
    assert m.cancel(jid) == 'running'
    wait_finished(m, [jid], timeout=25)
    time.sleep(2.5)
    j = m.get_job(jid)
    assert j.status == 'cancelled', (j.status, j.attempt, j.error)
    assert len(events(log, jid, 'start')) == 1, f"body ran {len(events(log, jid, 'start'))} times after the cancel"

def test_3d_cancel_then_sigterm(host, tmp_path, procs):
    "Cancel a running sync job, then SIGTERM its worker (grace 0.5 s): cancelled, not handed back as pending."
    log = tmp_path/'exec.log'
    m = manager(host)
    w = worker(host, tmp_path, procs, lease=3, grace=0.5, poll=0.5)
    jid = submit(m, ft.f_sleep, max_retries=2, s=3)
    _started(log, jid)
    assert m.cancel(jid) == 'running'
    time.sleep(1.2)
    w.send_signal(signal.SIGTERM)
    assert w.wait(20) == 0
    try: wait_for(lambda: m.get_job(jid).status in FINISHED, timeout=3)
    except TimeoutError: pass
    j = m.get_job(jid)
    assert j.status == 'cancelled', f"after SIGTERM the cancelled job is {j.status!r}"
    assert len(events(log, jid, 'start')) == 1

# --------------------------------------------------- 4. SIGTERM while a sync thread runs past the grace: no overlap
def test_4_sigterm_sync_thread_past_grace_no_overlap(host, tmp_path, procs):
    "Worker A (grace 0.5 s, lease 1 s) runs a 5 s sync job; B is serving; SIGTERM A: the runs never overlap."
    log = tmp_path/'exec.log'
    m = manager(host)
    a = worker(host, tmp_path, procs, 'a', lease=1, grace=0.5, poll=0.5, concurrency=1)
    jid = submit(m, ft.f_sleep, max_retries=2, s=5)
    assert _started(log, jid)['pid'] == a.pid
    b = worker(host, tmp_path, procs, 'b', lease=1, poll=0.5)
    probe = submit(m, ft.f_quick, tag='probe')   # A is full (concurrency 1): only B can take it
    wait_finished(m, [probe], timeout=20)
    assert [e['pid'] for e in events(log, probe, 'start')] == [b.pid]
    assert m.get_job(jid).status == 'running' and not events(log, jid, 'end'), "the job ended before the SIGTERM"
    a.send_signal(signal.SIGTERM)
    code = a.wait(20)
    wait_finished(m, [jid], timeout=20)
    rs = runs(log, jid)
    assert overlap(rs) is None, f"two runs of the job overlapped: {overlap(rs)}"
    assert all(r['end'] is not None for r in rs)
    assert m.get_job(jid).status == 'completed'
    assert code == 0
    assert b.poll() is None

# ---------------------------------------- 5. sync timeouts: no overlapping retry, bounded threads, not anyio's limiter
def test_5_sync_timeout_no_overlap_bounded_threads(host, tmp_path):
    """8 sync jobs (timeout 0.5 s, body 3 s, 1 retry) in an app. Four never look at cancel and return: the runner waits
    for their threads and keeps the late result (completed, no retry). Four check after their sleep and raise
    JobTimeout: TimeoutError, a retry that starts only after the thread ended, which times out again (failed)."""
    log, conc = tmp_path/'exec.log', 4
    srv = app_server(host, tmp_path, CONCURRENCY=conc)
    try:
        cli = httpx.Client(base_url=srv.url, timeout=10)
        m = manager(host)
        warm = submit(m, ft.f_sleep, s=0, tag='warm')   # the app's connection pools and I/O thread exist before the count
        wait_for(lambda: m.get_job(warm).status == 'completed', 30, msg='the warm-up job')
        base = cli.get('/threads').json()['active']
        ids = [submit(m, ft.f_sleep if k < 4 else ft.f_sleep_then_check, max_retries=1, timeout=0.5, s=3, tag=str(k))
               for k in range(8)]
        samples, end = [], time.time() + 45
        while time.time() < end:
            assert srv.proc.poll() is None, log_tail(tmp_path/'server.log')
            samples.append(cli.get('/threads').json())
            if all(m.get_job(i).status in FINISHED for i in ids): break
            time.sleep(0.1)
        assert events(log, ev='start'), "no body ran"
        borrowed = max(s['borrowed'] for s in samples)
        assert borrowed == 0, f"sync job attempts held {borrowed} of anyio's default thread tokens (sync routes wait)"
        bad = {i[:8]: overlap(runs(log, i)) for i in ids if overlap(runs(log, i))}
        assert not bad, f"a retry started while the timed-out attempt's thread still ran: {bad}"
        peak = max(s['active'] for s in samples)
        assert peak - base <= conc + 6, (f"threads grew from {base} to {peak} with concurrency {conc}: "
                                         f"{max(samples, key=lambda s: s['active'])['names']}")
        got = [(j.status, j.retry_count) for i in ids for j in [m.get_job(i)]]
        assert got == [('completed', 0)] * 4 + [('failed', 1)] * 4, got
        assert all(len(runs(log, i)) == 2 for i in ids[4:]), [len(runs(log, i)) for i in ids]
        assert all('TimeoutError' in m.get_job(i).error for i in ids[4:])
        assert cli.get('/health').status_code == 200
    finally: srv.stop()

# -------------------------------------------------------------------------------------------------- 6. fair default
@contextmanager
def scheduler_thread(sched):
    "Run `sched` on its own event loop in a thread of this process."
    stop, err = threading.Event(), []
    async def main():
        async with sched.running():
            while not stop.is_set(): await anyio.sleep(0.05)
    def go():
        try: anyio.run(main)
        except BaseException as e: err.append(e)
    th = threading.Thread(target=go, daemon=True); th.start()
    try: yield err
    finally:
        stop.set(); th.join(30)

def test_6_fair_default(host, tmp_path, monkeypatch):
    "Default scheduler: A has 16 slow jobs running; B's quick job, submitted after, ends before any of A's."
    log = tmp_path/'exec.log'
    monkeypatch.setenv('EXEC_LOG', str(log))
    ma, mb = manager(host, 'a'), manager(host, 'b')
    sched = Scheduler(host, poll=0.2)  # defaults (concurrency 8); a short poll so pick-up delay is not the question
    with scheduler_thread(sched) as err:
        a_ids = [submit(ma, ft.f_sleep, s=2, tag='A') for _ in range(16)]
        wait_for(lambda: events(log, ev='start'), timeout=15, msg="A's jobs started")
        time.sleep(0.2)
        b_id = submit(mb, ft.f_quick, tag='B')
        wait_finished(mb, [b_id], timeout=20)
        wait_finished(ma, a_ids, timeout=30)
    assert not err, err
    a_end = min(e['t'] for e in events(log, ev='end') if e['tag'] == 'A')
    b_end = events(log, b_id, 'end')[0]['t']
    jb = mb.get_job(b_id)
    assert jb.status == 'completed'
    first_a = min(ma.get_job(i).completed_at for i in a_ids)
    assert b_end < a_end and jb.completed_at < first_a, \
        (f"B's quick job waited behind tenant A's: it ended {b_end - a_end:+.2f} s after A's first job "
         "(A held every slot)")
