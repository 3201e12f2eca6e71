"""Fault injection on the stores: a tenant file write-locked by another process, a deleted or corrupt tenant database,
1,000 tenants under `ulimit -n 1024`, WAL growth under a burst, overdue jobs, lease-holder identity across fork and pid
namespaces. Real SQLite files, real processes, a real PostgreSQL (conftest `host`); see issue 9 and DESIGN.md
("Invariants the runner must hold"). Task bodies log each execution to a file (tests/apps/store_tasks.py).
"""
import asyncio, json, logging, os, shutil, sqlite3, subprocess, sys, threading, time
from contextlib import contextmanager, closing
from datetime import datetime
from pathlib import Path
import httpx
import pytest
from conftest import ROOT, wait_for
from apps.store_tasks import record, finish_when, progress_when, noop, steps
from fh_saas.db_host import SqliteHost
from fh_saas.scheduler import Scheduler
from fh_saas.store import WAL_LIMIT
from fh_saas.utils_bgtsk import BackgroundTaskManager

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]))
FINISHED = ('completed', 'failed', 'cancelled')


# ---------------------------------------------------------------- helpers
def epoch(ts: str | None) -> float | None:
    return None if ts is None else datetime.fromisoformat(ts).timestamp()

def execs(log, job_id=None) -> list[dict]:
    "Task executions from the log: one dict per start line (with its end, if logged)."
    out, ends = [], {}
    try: lines = Path(log).read_text().splitlines()
    except FileNotFoundError: return []
    for l in lines:
        if len(parts := l.split()) != 5: continue  # empty, or torn: a write a SIGKILL cut, or one still being written
        jid, att, pid, what, t = parts
        if job_id is not None and jid != job_id: continue
        if what == 'start': out.append(dict(id=jid, attempt=int(att), pid=int(pid), start=float(t), end=None))
        else: ends.setdefault((jid, int(att), int(pid)), []).append(float(t))
    for e in out:
        ts = ends.get((e['id'], e['attempt'], e['pid']))
        if ts: e['end'] = ts.pop(0)
    return out

def settle(fn, done, timeout: float, every: float = 0.1):
    "Call `fn()` until `done(value)` or `timeout` s; the last value (the caller asserts on it)."
    end = time.time() + timeout
    while True:
        v = fn()
        if done(v) or time.time() >= end: return v
        time.sleep(every)

@contextmanager
def serving(sched: Scheduler, extra=None):
    "Run `sched` in a thread with its own event loop (like an app's lifespan); `extra()` coroutine runs alongside."
    box, started = {}, threading.Event()
    def main():
        async def amain():
            box['loop'], box['stop'] = asyncio.get_running_loop(), asyncio.Event()
            side = asyncio.ensure_future(extra()) if extra else None
            try:
                async with sched.running():
                    started.set()
                    await box['stop'].wait()
            finally:
                if side: side.cancel()
        try: asyncio.run(amain())
        except BaseException as e: box['exc'] = e
        finally: started.set()
    th = threading.Thread(target=main, name='test-scheduler', daemon=True)
    th.start()
    assert started.wait(60), 'the scheduler did not start'
    if 'exc' in box: raise box['exc']
    try: yield sched
    finally:
        if 'loop' in box and not box['loop'].is_closed():
            try: box['loop'].call_soon_threadsafe(box['stop'].set)
            except RuntimeError: pass
        th.join(60)
        assert not th.is_alive(), 'the scheduler did not stop'
        if 'exc' in box: raise box['exc']

class Lock:
    "Another process holding a tenant file's write lock (BEGIN IMMEDIATE) for `seconds`."
    def __init__(self, db, seconds: float, tmp: Path, ready: Path | None = None):
        self.ready, self.released_file = ready or tmp/'lock.ready', tmp/'lock.released'
        for p in (self.ready, self.released_file): p.unlink(missing_ok=True)
        self.proc = subprocess.Popen([sys.executable, '-m', 'apps.store_tasks', 'lock', str(db), str(seconds),
                                      str(self.ready), str(self.released_file)], env=ENV, cwd=str(tmp))
        wait_for(lambda: self.ready.exists() or self.proc.poll() is not None, timeout=20, msg='lock taken')
        assert self.proc.poll() is None, f"the lock holder exited with {self.proc.returncode}"
        self.at = float(self.ready.read_text())
    def held(self) -> bool: return not self.released_file.exists()
    def wait(self) -> float:
        "Wait for the release; its time (taken just before COMMIT)."
        assert self.proc.wait(60) == 0
        return float(self.released_file.read_text())
    def stop(self):
        if self.proc.poll() is None: self.proc.kill(); self.proc.wait(10)

@contextmanager
def locked(db, seconds, tmp, ready=None):
    lk = Lock(db, seconds, tmp, ready)
    try: yield lk
    finally: lk.stop()

def quiet(m: BackgroundTaskManager):
    "A manager that only enqueues (the job is run by a scheduler)."
    m.run_here = False
    return m


# ---------------------------------------------------------------- 1. a locked tenant does not stall the others
def test_locked_tenant_does_not_stall_others(tmp_path):
    host, log = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log')
    a = BackgroundTaskManager(host.create('acme'), run_here=False)
    a_id, _ = a.submit('record', record, log=log, i=-1)             # due now; its tenant gets locked before anyone runs it
    b = BackgroundTaskManager(host.create('globex'))
    with locked(host.path('acme'), 8, tmp_path) as lk:
        with serving(Scheduler(host, concurrency=8, poll=0.5, grace=2)):
            b_ids = [b.submit('record', record, log=log, i=k)[0] for k in range(30)]   # wakes the scheduler
            n_b = settle(lambda: b.count_jobs(status='completed'), lambda n: n == 30 or not lk.held(), 30)
            held_then = lk.held()
            released = lk.wait()
            a_job = settle(lambda: a.get_job(a_id), lambda j: j.status in FINISHED, 20)
            b_jobs = [b.get_job(i) for i in b_ids]
            b_done = settle(lambda: b.count_jobs(status='completed'), lambda n: n == 30, 30)
    last_b = max((epoch(j.completed_at) or float('inf')) for j in b_jobs)
    print(f"\nlocked tenant: {n_b}/30 of globex done while acme was locked; last globex job done "
          f"{last_b - lk.at:.2f} s after the lock, the lock released at {released - lk.at:.2f} s")
    assert n_b == 30 and held_then, f"only {n_b} of 30 globex jobs completed while acme was locked (8 s)"
    assert last_b < released
    assert b_done == 30
    assert a_job.status == 'completed' and epoch(a_job.completed_at) > released
    assert len(execs(log, a_id)) == 1 and all(len(execs(log, i)) == 1 for i in b_ids)


# ---------------------------------------------------------------- 2. a finish write that outlasts the busy timeout
def test_finish_write_outlasting_busy_timeout_keeps_result(tmp_path):
    host, log, ready = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log'), tmp_path/'locked'
    m = quiet(BackgroundTaskManager(host.create('acme'), lease=30.0))
    with serving(Scheduler(host, concurrency=4, poll=0.5, lease=30.0, grace=2)):
        job_id, _ = m.submit('finish_when', finish_when, log=log, ready=str(ready))
        wait_for(lambda: execs(log, job_id), timeout=15, msg='the task started')
        with locked(host.path('acme'), 7, tmp_path, ready=ready) as lk:   # the task returns as soon as it is held
            released = lk.wait()
        job = settle(lambda: m.get_job(job_id), lambda j: j.status in FINISHED, 15)
    runs = execs(log, job_id)
    assert runs[0]['end'] is not None and lk.at <= runs[0]['end'] < released, "the task did not end while locked"
    assert job.status == 'completed', f"{job.status} 15 s after the lock's release (worker {job.worker})"
    assert job.result == {'saw_lock': True, 'pid': os.getpid()} and job.attempt == 1 and job.retry_count == 0
    assert len(runs) == 1, f"the task body ran {len(runs)} times"


# ---------------------------------------------------------------- 3. progress() under a lock does not block the loop
def test_async_progress_under_lock_does_not_block_loop(tmp_path):
    host, log, ready = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log'), tmp_path/'locked'
    m = quiet(BackgroundTaskManager(host.create('acme')))
    ticks = []
    async def ticker():                     # in the scheduler's event loop: a gap means the loop was blocked
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic(); ticks.append((time.time(), now - last)); last = now
    with serving(Scheduler(host, concurrency=4, poll=0.5, grace=2), extra=ticker):
        job_id, _ = m.submit('progress_when', progress_when, log=log, ready=str(ready), reports=8, every=0.4)
        wait_for(lambda: execs(log, job_id), timeout=15, msg='the task started')
        with locked(host.path('acme'), 7, tmp_path, ready=ready) as lk:
            job = settle(lambda: m.get_job(job_id), lambda j: j.status in FINISHED or not lk.held(), 20)
            released = lk.wait()
        job = settle(lambda: m.get_job(job_id), lambda j: j.status in FINISHED, 20)
    during = [g for t, g in ticks if lk.at <= t <= released + 0.5]
    worst = max(during, default=0.0)
    print(f"\nprogress under lock: worst event-loop gap {worst:.2f} s over {len(during)} ticks; job {job.status}, "
          f"attempt {job.attempt}, errors {[e.get('error') for e in job.error_log]}")
    assert during, 'the ticker did not run while the tenant was locked'
    assert worst < 1.0, f"the event loop was blocked {worst:.2f} s"
    assert job.status == 'completed' and job.result == 'done'
    assert job.retry_count == 0 and job.error_log == [] and job.attempt == 1, job.error_log
    assert len(execs(log, job_id)) == 1


# ---------------------------------------------------------------- 4. 1,000 tenants under ulimit -n 1024
def test_1000_tenants_under_ulimit_1024(tmp_path):
    d, log, out = tmp_path/'tenants', tmp_path/'exec.log', tmp_path/'fds.json'
    subprocess.run([sys.executable, '-m', 'apps.store_tasks', 'fill', str(d), '1000', str(log)], env=ENV,
                   cwd=str(tmp_path), check=True, timeout=120)
    p = subprocess.run([sys.executable, '-m', 'apps.store_tasks', 'fds', str(d), '1000', str(log), str(out), '30'],
                       env=ENV, cwd=str(tmp_path), timeout=120, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    status = {}
    for f in sorted(d.glob('t*.db')):
        with closing(sqlite3.connect(f, timeout=10)) as c:
            for (s,) in c.execute('SELECT status FROM tenant_jobs'): status[s] = status.get(s, 0) + 1
    print(f"\n1,000 tenants under ulimit -n 1024: {r['ran']} ran in {r['seconds']:.1f} s, peak open files {r['peak_fds']}, "
          f"{r['fds_after']} after; {r['errors']} warnings/errors logged {r['first_errors'][:2]}; statuses {status}; "
          f"scheduler crash: {r['crash']}")
    assert r['crash'] is None, r['crash']
    assert status == {'completed': 1000}, status
    assert r['ran'] == 1000


# ---------------------------------------------------------------- 5. WAL bounded under a burst, truncated when idle
def test_wal_bounded_under_burst_and_truncated_when_idle(tmp_path):
    host = SqliteHost(tmp_path/'tenants')
    m = quiet(BackgroundTaskManager(host.create('acme')))
    db, wal = host.path('acme'), Path(f"{host.path('acme')}-wal")
    peak, stop = [0], threading.Event()
    def sample():
        while not stop.is_set():
            try: peak[0] = max(peak[0], wal.stat().st_size)
            except FileNotFoundError: pass
            time.sleep(0.02)
    sampler = threading.Thread(target=sample, daemon=True); sampler.start()
    n, took, idle = 0, 0.0, None
    try:
        for k in range(10_000): m.submit('noop', noop, i=k)       # the burst: 10,000 due at once
        with serving(Scheduler(host, poll=0.5, grace=2)):
            t0 = time.time()
            n = settle(lambda: m.count_jobs(status='completed'), lambda n: n == 10_000, 90, every=0.5)
            took = time.time() - t0
            def wal_size():
                try: return wal.stat().st_size
                except FileNotFoundError: return 0
            if n == 10_000: idle = settle(wal_size, lambda s: s == 0, 12, every=0.2)   # idle: the scheduler still runs
    finally:
        stop.set(); sampler.join(5)
    size = db.stat().st_size
    cap = 3 * WAL_LIMIT + 2**20   # the writers stand back at three times WAL_LIMIT while a catch-up runs, twice otherwise:
                                  # the log passes that by one statement's pages at most
    print(f"\nWAL: {n:,} of 10,000 jobs completed in {took:.1f} s; peak -wal {peak[0] / 2**20:.1f} MB, "
          f"db {size / 2**20:.1f} MB, -wal after up to 12 s idle {None if idle is None else round(idle / 2**20, 2)} MB")
    assert peak[0] < cap, f"the -wal file reached {peak[0] / 2**20:.1f} MB for a {size / 2**20:.1f} MB database"
    assert n == 10_000, f"only {n:,} of 10,000 no-op jobs completed in {took:.0f} s ({n / took:.0f} jobs/s)"
    assert idle == 0, f"the -wal file is still {idle:,} bytes after 12 s idle"


# ---------------------------------------------------------------- 6. a deleted tenant database stays deleted
def test_deleted_tenant_stays_deleted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='fh_saas')
    host, log = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log')
    acme, globex = (quiet(BackgroundTaskManager(host.create(t))) for t in ('acme', 'globex'))
    path = host.path('acme')
    with serving(Scheduler(host, concurrency=4, poll=0.2, grace=2)):
        first, _ = acme.submit('record', record, log=log, i=1)
        settle(lambda: acme.get_job(first).status, lambda s: s == 'completed', 15)
        # work due after the deletion: sync tasks that report progress (their rows get written from job threads)
        later = [acme.enqueue('steps', steps, dict(log=log, n=5, every=0.15), delay=1.0)[0] for _ in range(6)]
        g1, _ = globex.submit('record', record, log=log, i=3)
        settle(lambda: globex.get_job(g1).status, lambda s: s == 'completed', 15)
        mark = len(caplog.records)
        for suffix in ('', '-wal', '-shm'): Path(f"{path}{suffix}").unlink(missing_ok=True)
        back = []
        end = time.time() + 3.0                                  # 15 polls, and past the delayed job's due time
        while time.time() < end:
            if path.exists(): back.append(round(time.time() - end + 3.0, 2))
            time.sleep(0.05)
        g2, _ = globex.submit('record', record, log=log, i=4)      # the scheduler still serves globex
        g2_status = settle(lambda: globex.get_job(g2).status, lambda s: s == 'completed', 15)
        time.sleep(1.0)
        exists_at_end = path.exists()
    after = [r for r in caplog.records[mark:] if r.levelno >= logging.WARNING and r.name.startswith('fh_saas')]
    ghost = [e for e in execs(log) if e['id'] in later]
    print(f"\ndeleted tenant: acme.db seen again at {back[:5]} s; {len(after)} warnings after the deletion: "
          f"{[r.getMessage()[:120] for r in after[:3]]}; {len(ghost)} runs of its delayed jobs after the deletion")
    assert not back and not exists_at_end, f"acme.db was re-created ({len(back)} samples, first at {back[:1]} s)"
    assert g2_status == 'completed'
    assert len(after) <= 1, f"{len(after)} warnings after acme was deleted: {[r.getMessage()[:120] for r in after[:5]]}"


# ---------------------------------------------------------------- 7. a corrupt JSON row
def _corrupt(host, tenant: str, job_id: str, col: str):
    "Write '{not json' into `col` of one row, with the database's own client (no fh_saas code)."
    if isinstance(host, SqliteHost):
        with closing(sqlite3.connect(host.path(tenant), timeout=10)) as c:
            c.execute(f"UPDATE tenant_jobs SET {col} = ? WHERE id = ?", ('{not json', job_id)); c.commit()
    else:
        import psycopg
        with psycopg.connect(host.conninfo, autocommit=True) as c:
            c.execute(f'UPDATE "tenant_{tenant}".tenant_jobs SET {col} = %s WHERE id = %s', ('{not json', job_id))

def _corrupt_tenant(host):
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    ids = [m.submit('noop', noop, i=k)[0] for k in range(5)]
    bad = dict(zip(('payload', 'error_log', 'result'), ids[:3]))
    for col, jid in bad.items(): _corrupt(host, 'acme', jid, col)
    return m, ids, bad

def test_corrupt_json_row_does_not_break_list_or_get(host):
    m, ids, bad = _corrupt_tenant(host)
    jobs = {j.id: j for j in m.list_jobs()}            # raises on the baseline (json.JSONDecodeError)
    assert set(jobs) == set(ids)
    for col, jid in bad.items():
        assert getattr(jobs[jid], 'broken', None), f"the row with a corrupt {col} is not marked broken"
        assert getattr(m.get_job(jid), 'broken', None)
    for k, jid in enumerate(ids[3:], 3):
        assert getattr(jobs[jid], 'broken', 'missing') is None and jobs[jid].payload == {'i': k}
    assert m.count_jobs() == 5

def test_corrupt_json_row_dashboard_shows_broken(tmp_path, server_factory):
    m, ids, bad = _corrupt_tenant(SqliteHost(tmp_path/'tenants'))
    srv = server_factory('apps.store_app:create_app', DATA_DIR=str(tmp_path/'tenants'), TENANT='acme')
    with httpx.Client(base_url=srv.url, timeout=20) as cli:
        page = cli.get('/jobs')
        one = cli.get(f"/jobs/{bad['payload']}")
        ok = cli.get(f"/jobs/{ids[4]}")
    assert page.status_code == 200, page.text[-500:]
    assert 'broken' in page.text.lower() and ids[4][:8] in page.text
    assert one.status_code == 200, one.text[-500:]
    assert ok.status_code == 200


# ---------------------------------------------------------------- 8. overdue, with no scheduler
def test_overdue_job_flagged_and_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='fh_saas')
    host, log = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log')
    url = host.create('acme')
    now = BackgroundTaskManager(url)
    job_id, bg = now.submit('record', record, log=log)
    del bg                                                       # the route forgot to return it; no scheduler runs
    later = BackgroundTaskManager(url, clock=lambda: time.time() + 120)
    j = later.get_job(job_id)
    assert getattr(j, 'overdue', None) is True, "a job due 120 s ago is not shown as overdue"
    assert now.get_job(job_id).overdue is False
    for k in range(3):
        later.list_jobs(); later.get_job(job_id); later.count_jobs()
        now.submit('record', record, log=log, i=k)              # more dropped jobs: still one warning for the tenant
        later.list_jobs(); later.get_job(job_id)
    assert all(x.overdue for x in later.list_jobs(status='pending'))
    warned = [r for r in caplog.records if 'overdue' in r.getMessage().lower() and r.levelno >= logging.WARNING]
    assert len(warned) == 1, f"{len(warned)} overdue warnings: {[r.getMessage() for r in warned[:5]]}"
    assert warned[0].name == 'fh_saas.jobs'
    assert now.get_job(job_id).status == 'pending' and not execs(log)


# ---------------------------------------------------------------- 9. lease-holder identity
def test_worker_id_differs_after_fork():
    import fh_saas.utils_bgtsk as u
    assert hasattr(u, 'worker_id'), 'fh_saas.utils_bgtsk.worker_id() does not exist'
    parent = u.worker_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try: os.write(w, u.worker_id().encode())
        finally: os._exit(0)
    os.close(w)
    with os.fdopen(r) as f: child = f.read()
    os.waitpid(pid, 0)
    assert child and child != parent, f"the forked child holds leases as {child!r}, like its parent"
    assert u.worker_id() == parent


def _free_pid() -> int:
    "A pid that no process of this namespace has (the other namespace's worker will get it)."
    top = int(Path('/proc/sys/kernel/pid_max').read_text())
    for p in range(top - 17, 300, -1):
        if not Path(f"/proc/{p}").exists(): return p
    pytest.skip('no free pid')

def _unshare_works() -> str | None:
    "Why `unshare --pid --fork --kill-child --mount-proc` (and ns_last_pid) cannot be used here, or None."
    if os.geteuid() != 0: return 'not root'
    if not shutil.which('unshare'): return 'no unshare(1)'
    try:
        p = subprocess.run(['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', sys.executable, '-c',
                            "import os; open('/proc/sys/kernel/ns_last_pid','w').write('4000'); "
                            "p = os.fork()\nif p == 0: print(os.getpid()); os._exit(0)\nos.waitpid(p, 0)"],
                           capture_output=True, text=True, timeout=30)
    except Exception as e: return f"unshare failed: {e}"
    if p.returncode != 0 or p.stdout.strip() != '4001': return f"unshare/ns_last_pid do not work here: {p.stderr[-300:]}"
    return None

def test_live_job_in_other_pid_namespace_is_not_rescued(tmp_path):
    why = _unshare_works()
    if why: pytest.skip(why)
    host, log = SqliteHost(tmp_path/'tenants'), str(tmp_path/'exec.log')
    url = host.create('acme')
    started, stop = tmp_path/'started', tmp_path/'stop'
    pid = _free_pid()
    proc = subprocess.Popen(['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', sys.executable, '-m',
                             'apps.store_tasks', 'nsrun', url, str(pid), log, str(started), str(stop)],
                            env=ENV, cwd=str(tmp_path))
    seen = []
    try:
        wait_for(lambda: started.exists() or proc.poll() is not None, timeout=30, msg='the job started in the namespace')
        assert proc.poll() is None, f"the namespace process exited with {proc.returncode}"
        assert started.read_text() == str(pid), f"the task runs as pid {started.read_text()}, not {pid}"
        m = BackgroundTaskManager(url)
        job = m.list_jobs()[0]
        assert (job.status, job.attempt) == ('running', 1)
        original = job.worker
        # same hostname, a pid that does not exist here: only the pid namespace tells the holder is alive
        with serving(Scheduler(host, concurrency=4, poll=0.3, lease=30.0, grace=2)):
            end = time.time() + 5.0
            while time.time() < end:
                j = m.get_job(job.id)
                seen.append((j.status, j.worker, j.attempt))
                if (j.status, j.worker) != ('running', original): break
                time.sleep(0.1)
            stop.write_text('1')
            assert proc.wait(30) == 0
            final = settle(lambda: m.get_job(job.id), lambda j: j.status in FINISHED, 10)
    finally:
        stop.write_text('1')
        if proc.poll() is None: proc.kill(); proc.wait(10)
    runs = execs(log, job.id)
    changed = [s for s in seen if (s[0], s[1]) != ('running', original)]
    print(f"\npid namespace: holder {original!r}; {len(seen)} looks, first change {changed[:1]}; "
          f"runs {[(r['pid'], r['attempt']) for r in runs]}")
    assert not changed, f"the scheduler took the live job from {original!r}: {changed[0]}"
    assert final.status == 'completed' and final.attempt == 1
    assert final.result == {'pid': pid} and len(runs) == 1
