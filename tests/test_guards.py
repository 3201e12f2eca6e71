"""Guards and promises, one small test each, on SQLite and PostgreSQL where they apply.

Each test here is the killer of one or more named breakages in `.ci/mutants.py`: the mutation check applies a
breakage to a copy of the package and runs the tests it names, which must fail. So each test is fast (a second or
two) and asserts the one behaviour its guard exists for.
"""
import asyncio, logging, os, subprocess, sys, threading, time
from contextlib import asynccontextmanager
from pathlib import Path
import anyio, pytest
from conftest import ROOT, Clock
from fh_saas.db_host import gen_id, timestamp, SqliteHost
from fh_saas.jobs import retry_delay, worker_id, pid_gone
from fh_saas.scheduler import Scheduler
from fh_saas.store import JobStore, WAL_LIMIT
from fh_saas.runner import Runner, JobThreads
from fh_saas.utils_bgtsk import BackgroundTaskManager, current_job

def add(a, b): return a + b
def fails(): raise ConnectionError('down')
def exits(): sys.exit(3)
async def cancels_itself(): raise anyio.get_cancelled_exc_class()()
async def waits_long():
    for _ in range(300): await anyio.sleep(0.01)
    return 'finished'

def row(store, **kw):
    "A pending job row written straight into `store`, due now."
    now = time.time()
    r = dict(id=gen_id(), job_type='add', status='pending', payload='{"a": 1, "b": 2}', created_at=timestamp(now),
             run_at=now, updated_at=timestamp(now), func_path=f'{__name__}:add')
    r.update(kw)
    return store.insert(r)

def second_attempt(st):
    "A job whose first attempt's lease ran out and was rescued, now running its second attempt."
    now = time.time()
    i = row(st, run_at=now)
    st.claim(i, now, 1, 'w1')
    assert st.rescue(now + 5) == 1
    assert st.claim(i, now + 5, 30, 'w2')['attempt'] == 2
    return i, now + 5

# ------------------------------------------------------------------ guarded writes: the attempt and the status
def test_a_stale_attempt_cannot_finish(host):
    st = BackgroundTaskManager(host.create('acme')).store
    i, now = second_attempt(st)
    assert st.finish(i, 1, 'completed', now, result='9') is None    # attempt 1's late outcome
    k = row(st); kept = st.claim(k, time.time(), 30, 'w3')['attempt']
    async def together():  # ending in one turn of the loop: one grouped write, each attempt its own outcome
        return await asyncio.gather(st.finish_soon(i, 1, 'completed', now, result='9'),
                                    st.finish_soon(k, kept, 'completed', now, result='3'))
    assert anyio.run(together) == [None, 'completed']
    j = st.get(i)
    assert (j['status'], j['attempt'], j['result']) == ('running', 2, None)
    assert (st.get(k)['status'], st.get(k)['result']) == ('completed', '3')

def test_a_stale_attempt_cannot_finish_a_job_whose_cancel_was_asked(host):
    "The write a finish falls back to when a cancel was asked (sticky, `cancelled`) is guarded by the attempt too."
    st = BackgroundTaskManager(host.create('acme')).store
    i, now = second_attempt(st)
    assert st.cancel(i, now) == 'running'   # asked of attempt 2, which still runs
    assert st.finish(i, 1, 'completed', now, result='9') is None    # attempt 1's late outcome, alone
    async def grouped():  # and in a group with a current attempt, as the scheduler writes them
        k = row(st); kept = st.claim(k, now, 30, 'w3')['attempt']
        return await asyncio.gather(st.finish_soon(i, 1, 'failed', now), st.finish_soon(k, kept, 'completed', now))
    assert anyio.run(grouped) == [None, 'completed']
    j = st.get(i)
    assert (j['status'], j['attempt'], j['result'], j['completed_at']) == ('running', 2, None, None)

def test_a_stale_attempt_cannot_reschedule_renew_or_release(host):
    st = BackgroundTaskManager(host.create('acme')).store
    i, now = second_attempt(st)
    assert st.reschedule(i, 1, now + 100, now, '[]') is None
    assert st.renew(i, 1, now + 999, now) is None
    assert st.release(i, 1, now) is None
    j = st.get(i)
    assert (j['status'], j['attempt'], j['run_at'] < now + 100, j['lease_until']) == ('running', 2, True, now + 30)

def test_a_running_job_cannot_be_claimed_again(host):
    st = BackgroundTaskManager(host.create('acme')).store
    i = row(st)
    assert st.claim(i, time.time(), 30, 'w1')['attempt'] == 1
    assert st.claim(i, time.time(), 30, 'w2') is None
    assert st.get(i)['worker'] == 'w1'

def test_claims_skip_rows_another_claim_has_locked(pg_server):
    "PostgreSQL: a claim passes over rows locked by another transaction instead of waiting for them."
    import psycopg
    from fh_saas.pg import PgHost
    db = f"g{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    st = BackgroundTaskManager(host.create('acme')).store
    ids = [row(st) for _ in range(6)]
    with psycopg.connect(host.conninfo) as locker:  # a transaction holding 4 rows, open until the end
        locker.execute(f"SET search_path = {st.schema}")
        held = [r[0] for r in locker.execute("SELECT id FROM tenant_jobs ORDER BY run_at LIMIT 4 FOR UPDATE").fetchall()]
        got = []
        t = threading.Thread(target=lambda: got.append(st.claim_due(time.time(), 30, 'w', n=6)), daemon=True)
        t.start(); t.join(5)
        assert got, "the claim waited for the locked rows"
        assert sorted(r['id'] for r in got[0]) == sorted(set(ids) - set(held))
        locker.rollback()

# ------------------------------------------------------------------ retries: the base and the cap
def test_retries_wait_2_4_8_then_fail(host):
    clk = Clock()
    m = BackgroundTaskManager(host.create('acme'), clock=clk, sleep=clk.sleep)
    i, bg = m.submit('down', fails, max_retries=3)
    anyio.run(bg)
    j = m.get_job(i)
    assert (clk.slept, j.status, j.retry_count, j.attempt) == ([2.0, 4.0, 8.0], 'failed', 3, 4)
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, None, None]

def test_max_retries_zero_means_one_attempt(host):
    clk = Clock()
    m = BackgroundTaskManager(host.create('acme'), clock=clk, sleep=clk.sleep)
    i, bg = m.submit('down', fails, max_retries=0)
    anyio.run(bg)
    assert (m.get_job(i).status, m.get_job(i).attempt, clk.slept) == ('failed', 1, [])

# ------------------------------------------------------------------ cancel: sticky, and seen across processes
def test_cancel_is_sticky_over_a_retry_and_a_finish(host):
    st = BackgroundTaskManager(host.create('acme')).store
    now = time.time()
    for end in (lambda i: st.reschedule(i, 1, now, now, '[]'), lambda i: st.finish(i, 1, 'completed', now, result='1'),
                lambda i: st.release(i, 1, now)):
        i = row(st, run_at=now)
        st.claim(i, now, 30, 'w')
        assert st.cancel(i, now) == 'running'
        assert end(i) == 'cancelled'
        assert st.get(i)['status'] == 'cancelled' and st.claim(i, now + 60, 30, 'w2') is None

def test_a_cancel_asked_elsewhere_stops_a_running_async_task(host):
    "A cancel written to the row (as another process would) stops the task within a couple of seconds."
    st = BackgroundTaskManager(host.create('acme')).store
    i = row(st, job_type='waits_long', payload='{}', func_path=f'{__name__}:waits_long')
    r = Runner(st, lease=30, threads=JobThreads(1), task_modules=[__name__])   # a row written here: declare its module
    async def go():
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: r.run(i))
            await wait_async(lambda: st.get(i)['status'] == 'running')
            t0 = time.monotonic(); st.cancel(i, time.time())  # the store, not the manager: nobody tells this process
            await wait_async(lambda: st.get(i)['status'] == 'cancelled', timeout=2.5)
            return time.monotonic() - t0
    took = anyio.run(go)
    assert took < 2.5

async def wait_async(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, 'condition not reached'
        await anyio.sleep(0.02)

# ------------------------------------------------------------------ prune: only what ended before the cut-off
def test_prune_keeps_what_ended_recently(host):
    m = BackgroundTaskManager(host.create('acme'))
    old = BackgroundTaskManager(m.store, clock=lambda: time.time() - 7200)
    a, bg = old.submit('add', add, a=1, b=1); anyio.run(bg)
    b, bg = m.submit('add', add, a=2, b=2); anyio.run(bg)
    p, _ = m.submit('add', add, a=3, b=3)                     # pending: never pruned
    assert m.prune(older_than=3600) == 1
    assert {j.id for j in m.list_jobs()} == {b, p}

# ------------------------------------------------------------------ rescue: at once when the holder is surely gone
HOLD = """
import sys, time
from fh_saas.store import JobStore
from fh_saas.jobs import worker_id
st = JobStore(sys.argv[1])
print(st.claim(sys.argv[2], time.time(), 600, worker_id())['attempt'], flush=True)
time.sleep(60)
"""

def test_a_dead_holders_job_is_rescued_at_once(tmp_path):
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    i = row(st)
    p = subprocess.Popen([sys.executable, '-c', HOLD, st.url, i], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try: assert p.stdout.readline().strip() == '1'   # claimed, with a 10-minute lease
    finally: p.kill(); p.wait()
    assert st.rescue(time.time(), gone=pid_gone) == 1     # its holder's pid is gone: no need to wait 10 minutes
    assert st.get(i)['status'] == 'pending'

def test_a_holder_in_another_pid_namespace_is_never_judged_dead():
    host, pid, start, boot, ns, tok = worker_id().split(':')
    dead = subprocess.Popen([sys.executable, '-c', 'pass']); dead.wait()
    assert pid_gone(f"{host}:{dead.pid}:1:{boot}:{ns}:x")              # this namespace: gone
    assert not pid_gone(f"{host}:{dead.pid}:1:{boot}:{int(ns) + 1}:x")  # another one: cannot tell
    assert not pid_gone(f"{host}:{dead.pid}:1:{boot[::-1]}:{ns}:x")    # another boot: cannot tell

# ------------------------------------------------------------------ the runner's invariants
def test_a_claimed_job_keeps_its_lease_while_it_runs(host):
    "A 1.2 s sync job on a 0.6 s lease: never rescued while it runs (renewed from the claim on)."
    st = BackgroundTaskManager(host.create('acme')).store
    i = row(st, job_type='snooze', payload='{"s": 1.2}', func_path=f'{__name__}:snooze')
    r, rescued = Runner(st, lease=0.6, threads=JobThreads(1), task_modules=[__name__]), []
    async def go():
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: r.run(i))
            await wait_async(lambda: st.get(i)['status'] == 'running')
            for _ in range(5): await anyio.sleep(0.2); rescued.append(st.rescue(time.time()))
    anyio.run(go)
    assert rescued == [0] * 5 and st.get(i)['attempt'] == 1 and st.get(i)['status'] == 'completed'

def snooze(s: float): time.sleep(s); return s

def test_no_more_jobs_run_than_threads(host):
    "A scheduler with 2 threads never has more than 2 jobs running, whatever is due (3 tenants, each due)."
    ms = [BackgroundTaskManager(host.create(t), run_here=False) for t in ('a1', 'a2', 'a3')]
    ids = [(m, m.submit('snooze', snooze, s=0.2)[0]) for m in ms for _ in range(3)]
    seen = []
    async def go():
        with anyio.fail_after(20):
            async with Scheduler(host, concurrency=2, per_tenant=4, tenant_slots=2, poll=0.1).running():
                while not all(m.get_job(x).status == 'completed' for m, x in ids):
                    seen.append(sum(m.count_jobs(status='running') for m in ms)); await anyio.sleep(0.02)
    anyio.run(go)
    assert max(seen) <= 2, max(seen)

def test_whatever_a_task_raises_is_a_failed_attempt(host):
    m = BackgroundTaskManager(host.create('acme'))
    for fn in (exits, cancels_itself):
        i, bg = m.submit(fn.__name__, fn, max_retries=0)
        anyio.run(bg)                                     # nothing escapes into Starlette
        j = m.get_job(i)
        assert (j.status, j.attempt) == ('failed', 1), (fn.__name__, j.status)
        assert j.error.split(':')[0] in ('SystemExit', 'CancelledError')

def test_a_timed_out_sync_attempt_is_waited_for_before_its_retry(host, tmp_path):
    log_ = tmp_path/'spans'
    m = BackgroundTaskManager(host.create('acme'), policy=lambda n, e, max_retries: 0.0 if n <= max_retries else None)
    i, bg = m.enqueue('slow_then_check', slow_then_check, dict(path=str(log_)), timeout=0.2, max_retries=1)
    anyio.run(bg)
    spans = [tuple(map(float, l.split())) for l in log_.read_text().split('\n') if l]
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], spans   # the retry began after the first thread ended
    assert m.get_job(i).status == 'failed' and 'timeout' in m.get_job(i).error

def slow_then_check(path: str):
    t0 = time.time(); time.sleep(0.6)
    with open(path, 'a') as f: f.write(f"{t0} {time.time()}\n")
    current_job().check_cancelled()

def test_a_locked_tenant_does_not_stall_the_others(tmp_path):
    from fh_saas.db_host import SqliteHost
    host = SqliteHost(tmp_path)
    a, b = BackgroundTaskManager(host.create('acme'), run_here=False), BackgroundTaskManager(host.create('globex'), run_here=False)
    a.submit('add', add, a=1, b=1)
    ids = [b.submit('add', add, a=k, b=k)[0] for k in range(10)]
    locker = subprocess.Popen([sys.executable, '-c', f"c = __import__('sqlite3').connect({str(host.path('acme'))!r}, "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); "
                               "__import__('time').sleep(4)"], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == 'locked'
        async def go():
            async with Scheduler(host, poll=0.1).running():
                await wait_async(lambda: all(b.get_job(x).status == 'completed' for x in ids), timeout=3)
        anyio.run(go)
        assert locker.poll() is None   # globex's jobs all ran while acme was still locked
    finally: locker.kill(); locker.wait()

def test_a_result_outlasts_a_lock_longer_than_the_busy_timeout(tmp_path):
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    i = row(st)
    claimed = st.claim(i, time.time(), 30, worker_id())
    locker = subprocess.Popen([sys.executable, '-c', f"c = __import__('sqlite3').connect({str(st.path)!r}, "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); "
                               "__import__('time').sleep(6); c.execute('COMMIT')"], stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline().strip() == 'locked'
    from fh_saas.runner import Outcome
    r = Runner(st, lease=30, threads=JobThreads(1))
    ctx = r._start(claimed)
    try: assert r.record(claimed, Outcome('ok', 3), ctx) == ('completed', None)
    finally: r._end(ctx); locker.wait()
    assert st.get(i)['result'] == '3'

def test_a_submit_made_while_another_process_holds_the_file_waits_for_it_and_writes_once(tmp_path):
    "The submit's first, no-wait write finds the file locked: it waits for the lock (within the busy timeout) and writes the job once."
    m = BackgroundTaskManager(JobStore(f"sqlite:///{tmp_path/'acme.db'}"), run_here=False)
    locker = subprocess.Popen([sys.executable, '-c', f"import sqlite3, time; c = sqlite3.connect({str(m.store.path)!r}, "
                               "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); "
                               "time.sleep(1); print(time.time(), flush=True); c.execute('COMMIT')"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == 'locked'
        job_id, _ = m.submit('add', add, a=1, b=2)
        written = time.time()
        released = float(locker.stdout.readline())
    finally: locker.kill(); locker.wait()
    assert written >= released  # it waited for the other writer, neither failing nor skipping the write
    assert [(j.id, j.status, j.payload) for j in m.list_jobs()] == [(job_id, 'pending', {'a': 1, 'b': 2})]

GO = threading.Event()
async def held(n: int):
    "Runs until the test says go; the third one fails."
    while not GO.is_set(): await asyncio.sleep(0.005)
    if n == 3: raise ValueError('three')
    return n

def six_ending_while_locked(tmp_path, lock_s:float, while_locked):
    """Six async jobs (the third fails) end in one turn of the loop while another process holds their file for
    `lock_s` s; `while_locked(m)` runs once they ended. Each must then be recorded once, with its own outcome, and
    told so to the outcome hooks."""
    from fh_saas.db_host import SqliteHost
    from fh_saas.runner import outcome_hooks
    host = SqliteHost(tmp_path); GO.clear()
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    ids = {k: m.submit('held', held, max_retries=0, n=k)[0] for k in range(6)}
    told = []
    hook = lambda store, row, outcome, started, ended: told.append((row['id'], outcome))
    async def go():
        with anyio.fail_after(20):
            async with Scheduler(host, concurrency=8, per_tenant=8, poll=0.1, task_modules=[__name__]).running():
                await wait_async(lambda: m.count_jobs(status='running') == 6, timeout=5)
                locker = subprocess.Popen([sys.executable, '-c', f"c = __import__('sqlite3').connect({str(host.path('acme'))!r}, "
                                           "isolation_level=None); c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); "
                                           f"__import__('time').sleep({lock_s}); c.execute('COMMIT')"], stdout=subprocess.PIPE, text=True)
                try:
                    assert locker.stdout.readline().strip() == 'locked'
                    GO.set()
                    await while_locked(m, locker)
                    await wait_async(lambda: m.count_jobs(status='running') == 0 and len(told) == 6, timeout=10)
                finally: locker.kill(); locker.wait()
    outcome_hooks.append(hook)
    try: anyio.run(go)
    finally: outcome_hooks.remove(hook)
    assert sorted(told) == sorted((i, 'failed' if k == 3 else 'completed') for k, i in ids.items())
    jobs = {k: m.get_job(i) for k, i in ids.items()}
    assert {k: (j.status, j.attempt) for k, j in jobs.items()} == {k: ('failed' if k == 3 else 'completed', 1) for k in ids}
    assert [jobs[k].result for k in ids if k != 3] == [0, 1, 2, 4, 5] and 'three' in jobs[3].error

def test_attempts_ending_together_on_a_locked_database_are_each_recorded_once(tmp_path):
    """Their grouped write cannot be made on the loop, nor from a thread within `LATE_WAIT`: each is written from a
    job thread once the lock is gone, with its own outcome, none run twice."""
    async def still_running(m, locker):
        await anyio.sleep(0.5)
        assert locker.poll() is None and m.count_jobs(status='running') == 6  # ended, not yet written
    six_ending_while_locked(tmp_path, 1.5, still_running)

def test_attempts_ending_together_while_a_short_lock_is_held_are_written_together_from_a_thread(tmp_path):
    "Held for less than `LATE_WAIT`: the group waits for the lock in a thread and is written there, together."
    from fh_saas.store import LATE_WAIT
    async def soon(m, locker): await wait_async(lambda: m.count_jobs(status='running') == 0, timeout=LATE_WAIT * 4)
    six_ending_while_locked(tmp_path, LATE_WAIT / 3, soon)

# ------------------------------------------------------------------ storage faults and bounds
def test_new_tenant_files_get_small_pages_and_older_files_keep_theirs(tmp_path):
    """A file fh-saas makes (`SqliteHost.create`, `JobStore(create=True)`) has `PAGE_SIZE`-byte pages in WAL mode: each
    page a write changes is copied whole into the log and back. A file made before, with SQLite's 4096, keeps them and works."""
    import sqlite3
    from fh_saas.db_host import PAGE_SIZE
    def pages(p):
        c = sqlite3.connect(p)
        try: return c.execute('PRAGMA page_size').fetchone()[0], c.execute('PRAGMA journal_mode').fetchone()[0]
        finally: c.close()
    host = SqliteHost(tmp_path/'tenants')
    host.create('acme')
    JobStore(f"sqlite:///{tmp_path/'direct.db'}").close()
    assert pages(host.path('acme')) == pages(tmp_path/'direct.db') == (PAGE_SIZE, 'wal') and PAGE_SIZE < 4096
    old = tmp_path/'old.db'
    c = sqlite3.connect(old); c.execute('PRAGMA journal_mode=WAL'); c.execute('CREATE TABLE app_table (x)'); c.close()
    m = BackgroundTaskManager(JobStore(f"sqlite:///{old}"))
    job_id, bg = m.submit('add', add, a=1, b=2)
    anyio.run(bg)
    assert pages(old) == (4096, 'wal') and (m.get_job(job_id).status, m.get_job(job_id).result) == ('completed', 3)

def test_near_its_limit_the_log_is_looked_at_every_statement(tmp_path):
    """Past twice `WAL_LIMIT` every write looks at the log's size (within `CHECK_WAL_EVERY` statements of passing it),
    so the loop's no-wait writes stand back at the first statement that takes the log past three times the limit
    while a catch-up runs. (Here no catch-up can start or catch up: the log only grows.)"""
    import os
    from fh_saas.store import CHECK_WAL_EVERY
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    st._ckpt = True  # a catch-up is marked running, so none starts: nothing copies the log
    looks, real = [0], st.wal_size
    st.wal_size = lambda: looks.__setitem__(0, looks[0] + 1) or real()  # the store's own looks, counted
    m, wal = BackgroundTaskManager(st, run_here=False), f"{st.path}-wal"
    band, past = [], 0  # for each write while the log is between twice and three times the limit: whether it looked
    for _ in range(20_000):
        before = looks[0]
        ok, _ = st.inline(st.insert, m._new_row('add', add, dict(a=1, b=2), 3, None, None, None, None))
        if not ok: break
        size = os.path.getsize(wal)
        if 2 * WAL_LIMIT < size <= 3 * WAL_LIMIT: band.append(looks[0] > before)
        past += size > 3 * WAL_LIMIT
    assert not ok and len(band) > 2 * CHECK_WAL_EVERY, (ok, len(band))  # it stood back; the band held enough writes
    assert all(band[CHECK_WAL_EVERY:]), f"{band[CHECK_WAL_EVERY:].count(False)} writes near the limit did not look at the log"
    assert past <= 1, f"{past} no-wait writes went through after the log passed three times WAL_LIMIT"

def test_a_deleted_database_is_not_created_again(tmp_path):
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    st.close()
    for s in ('', '-wal', '-shm'): Path(f"{st.path}{s}").unlink(missing_ok=True)
    with pytest.raises(Exception, match='unable to open'): st.count()
    assert not st.path.exists()

def test_a_corrupt_row_is_listed_as_broken(host):
    m = BackgroundTaskManager(host.create('acme'))
    good, _ = m.submit('add', add, a=1, b=1)
    bad, _ = m.submit('add', add, a=1, b=2)
    m.store._write("UPDATE tenant_jobs SET payload = '{not json' WHERE id = :id", dict(id=bad))
    jobs = {j.id: j for j in m.list_jobs()}
    assert jobs[good].broken is None and jobs[bad].broken.startswith('payload')
    assert m.get_job(bad).broken

def test_the_log_stays_small_under_a_burst(tmp_path):
    "4,000 writes from the event loop's no-wait connections (which never checkpoint): the log stays a few MB."
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    peak = 0
    for k in range(4000):
        r = dict(id=gen_id(), job_type='x', status='pending', payload='{}', created_at='', run_at=0, updated_at='')
        if not st.inline(st.insert, r)[0]: st.insert(r)   # busy: written from a thread, as the runner does
        if k % 200 == 0: peak = max(peak, st.wal_size())
    assert st.count() == 4000
    assert peak < 5 * WAL_LIMIT, peak   # unchecked, it passes 100 MB

FORK_THREADS = """
import asyncio, os, sys
from fh_saas.runner import JobThreads, in_io
jt = JobThreads(1)
async def one(): return await asyncio.wait_for(jt.run(sum, [1, 2]), 5) + await asyncio.wait_for(in_io(sum, [3]), 5)
assert asyncio.run(one()) == 6            # the parent's job thread and an I/O thread are started, and wait for work
assert jt.take(1) == 1                    # and the parent's one slot is taken by a job of its own
pid = os.fork()
if pid == 0:
    try: os._exit(0 if jt.free == 1 and asyncio.run(one()) == 6 else 1)   # none of the parent's jobs is here
    except BaseException: os._exit(2)     # the call waited 5 s for a thread that is not in this process
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

def test_job_threads_work_in_a_forked_child():
    "A process forked from one that already ran jobs (a pre-forking server's workers) runs its sync tasks and its store calls in threads of its own."
    r = subprocess.run([sys.executable, '-c', FORK_THREADS], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])

def test_a_busy_logs_checkpoint_never_locks_out_the_event_loop(tmp_path):
    """Past WAL_LIMIT the store checkpoints its log from a thread of its own while the event loop's no-wait writes go on.
    A reader holding an old snapshot (a long dashboard query) must not turn that checkpoint into a lock on writers:
    every no-wait write is taken while the checkpoint runs, none is refused as busy."""
    import sqlite3
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    def new(): return dict(id=gen_id(), job_type='x', status='pending', payload='{}', created_at='', run_at=0, updated_at='')
    reader = sqlite3.connect(st.path, isolation_level=None)
    reader.execute('BEGIN'); reader.execute('SELECT count(*) FROM tenant_jobs').fetchall()   # its snapshot stays old
    try:
        while st.wal_size() < 0.95 * WAL_LIMIT: assert st.inline(st.insert, new())[0]
        seen, refused, writes, t_end = False, 0, 0, time.monotonic() + 5
        while time.monotonic() < t_end:
            ok, _ = st.inline(st.insert, new()); writes += 1; refused += not ok
            seen = seen or st._ckpt
            if seen and not st._ckpt and writes > 20: break   # the background checkpoint ran and ended
            time.sleep(0.003)
    finally: reader.rollback(); reader.close()
    assert seen, "no background checkpoint started past WAL_LIMIT"
    assert st.wal_size() < 2 * WAL_LIMIT   # the test stayed below the size at which writers stand back by design
    assert refused == 0, f"{refused} of {writes} no-wait writes were refused while the log was checkpointed"

def test_a_steady_stream_of_writes_restarts_the_log_in_short_pauses(tmp_path, monkeypatch):
    """Past WAL_LIMIT, under a steady stream of no-wait writes (a backlog being drained), the background checkpoint
    copies the log in passes while the writes go on, then restarts it in a pause of theirs: the log starts over again
    and again (the file is cut back), and the writers seldom stand back until it is emptied (`_wal_big`, which stops
    them for a whole checkpoint: the only way a passive checkpoint alone gets a log that never stops growing to start
    over). Only a pass slowed by the disk (a 50 ms sync) lets the log outgrow the passes; the other refusals are the
    restart pauses, at most one write each: the writer then waits for the pause's end and goes on."""
    st = JobStore(f"sqlite:///{tmp_path/'acme.db'}")
    pauses, restart = [0], JobStore._restart
    def counted(self): pauses[0] += 1; restart(self)
    monkeypatch.setattr(JobStore, '_restart', counted)
    stood_back = refused = cut = last = 0
    for k in range(6000):
        r = dict(id=gen_id(), job_type='x', status='pending', payload='{}', created_at='', run_at=0, updated_at='')
        if not st.inline(st.insert, r)[0]: st.insert(r); refused += 1   # refused: written by a thread that may wait
        stood_back += st._wal_big
        size = st.wal_size(); cut += size < last; last = size
        time.sleep(0.0001)   # the event loop's other work between two writes
    assert st.count() == 6000
    assert cut >= 4 and pauses[0] >= 4, (cut, pauses[0])   # 6,000 rows write about 23 MB of log: it restarted
    assert stood_back <= cut // 4, f"writers stood back at {stood_back} of the log's {cut} restarts"
    assert refused <= pauses[0] + stood_back, (refused, pauses[0], stood_back)

def test_an_idle_tenants_log_is_truncated(tmp_path):
    from fh_saas.db_host import SqliteHost
    host = SqliteHost(tmp_path)
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    for _ in range(50): m.store.inline(lambda: m.submit('add', add, a=1, b=1))   # no-wait writes: the log keeps them
    assert m.store.wal_size() > 0
    async def go():
        async with Scheduler(host, poll=0.1).running():
            await wait_async(lambda: m.count_jobs(status='completed') == 50)
            await wait_async(lambda: m.store.wal_size() == 0, timeout=3)
    anyio.run(go)

FDS = """
import os, sys, tempfile
from pathlib import Path
from fh_saas.store import store_for
d = Path(tempfile.mkdtemp())
before = len(os.listdir('/proc/self/fd'))
for k in range(200): store_for(d/f"t{k}.db", create=True).count()
print(len(os.listdir('/proc/self/fd')) - before)
"""

def test_open_files_stay_under_the_cap():
    out = subprocess.run([sys.executable, '-c', FDS], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), FH_SAAS_IDLE_CONNECTIONS='16')).stdout
    assert int(out) <= 16 * 3 + 6, out   # at most 16 idle connections, 3 files each

def test_a_forked_child_signs_its_own_leases():
    r, w = os.pipe()
    me = worker_id()
    pid = os.fork()
    if pid == 0:
        os.write(w, worker_id().encode()); os._exit(0)
    os.waitpid(pid, 0); os.close(w)
    child = os.read(r, 300).decode(); os.close(r)
    assert child != me and child.split(':')[1] == str(pid)

def test_a_forked_child_renews_its_own_leases():
    "A child forked while the lease keeper's lock was held, by a thread the child does not have: its keeper starts afresh."
    from fh_saas.runner import leases
    class Attempt:  # what the keeper needs of an attempt: its lease, and how to renew it
        lease, id, attempt, store, worker = 0.3, 'j', 1, None, 'w'
        def __init__(self, w): self.w = w
        def renew(self): os.write(self.w, b'r'); return True
        def flush(self): return True
    r0, w0 = os.pipe()
    a = Attempt(w0); leases.add(a)                        # an attempt of the parent's, and its keeper thread
    held, release = threading.Event(), threading.Event()
    def hold():
        with leases.cv: held.set(); release.wait(5)
    t = threading.Thread(target=hold); t.start(); held.wait(5)
    r, w = os.pipe()
    pid = os.fork()                                       # the keeper's lock is held at this moment
    if pid == 0:
        try: leases.add(Attempt(w)); time.sleep(0.6)
        finally: os._exit(0)
    release.set(); t.join(); leases.remove(a); os.close(w)
    end = time.monotonic() + 5
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > end: os.kill(pid, 9); os.waitpid(pid, 0); break
        time.sleep(0.02)
    got = os.read(r, 100); os.close(r); os.close(r0); os.close(w0)
    assert got.count(b'r') >= 2, got   # renewed in the child, every third of its 0.3 s lease; the parent's not at all

SLOW_MODULE = """import time
time.sleep(0.6)
def late(): return 'whole'
"""

def test_a_task_module_half_imported_elsewhere_is_waited_for(tmp_path, monkeypatch):
    "A row's task is resolved while another thread is still importing its module: the whole module, never a half."
    from fh_saas.jobs import resolve, TaskRegistry
    name = f"slow_tasks_{gen_id()[:8]}"
    (tmp_path/f"{name}.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    t = threading.Thread(target=__import__, args=(name,)); t.start()
    try:
        while name not in sys.modules: time.sleep(0.005)   # the other thread is inside its 0.6 s import now
        fn = resolve('late', f"{name}:late", TaskRegistry(), task_modules=(name,))
    finally: t.join()
    assert fn() == 'whole'

def test_overdue_is_flagged_and_logged_once(host, caplog):
    m = BackgroundTaskManager(host.create('acme'))
    i, _ = m.submit('add', add, a=1, b=1)                        # its bg_task is dropped, and no scheduler runs
    later = iter(range(120, 10**6, 61))   # each read a minute later than the last: the look-once-a-minute lets it look
    ahead = BackgroundTaskManager(m.store, clock=lambda: time.time() + next(later))
    with caplog.at_level(logging.WARNING, logger='fh_saas.jobs'):
        for _ in range(3): assert ahead.get_job(i).overdue; ahead.list_jobs()
    assert sum('overdue' in r.getMessage() for r in caplog.records) == 1
    assert not m.get_job(i).overdue

def test_a_tenants_long_jobs_leave_a_slot_for_another_tenant(host):
    hog, quick = BackgroundTaskManager(host.create('hog'), run_here=False), BackgroundTaskManager(host.create('quick'), run_here=False)
    slow = [hog.submit('snooze', snooze, s=1.0)[0] for _ in range(10)]
    async def go():
        async with Scheduler(host, concurrency=4, poll=0.1).running():
            await wait_async(lambda: hog.count_jobs(status='running') >= 3)
            q, _ = quick.submit('add', add, a=1, b=1)
            await wait_async(lambda: quick.get_job(q).status == 'completed', timeout=0.9)
            for x in slow: hog.cancel(x)
    anyio.run(go)

# ------------------------------------------------------------------ submissions: bad input writes nothing
def test_bad_arguments_write_nothing(host):
    m = BackgroundTaskManager(host.create('acme'), max_payload=1000)
    for kw in (dict(a=object(), b=1), dict(a=float('nan'), b=1), dict(a='x' * 2000, b=1)):   # arguments that fit add()
        with pytest.raises((TypeError, ValueError)): m.submit('add', add, **kw)
    assert m.count_jobs() == 0

# ------------------------------------------------------------------ PostgreSQL: NOTIFY on insert, and it wakes a runner
def test_an_insert_notifies_and_wakes_an_idle_scheduler(pg_server):
    import psycopg
    from fh_saas.pg import PgHost, CHANNEL
    db = f"n{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    with psycopg.connect(host.conninfo, autocommit=True) as c:
        c.execute(f"LISTEN {CHANNEL}")
        m.submit('add', add, a=1, b=1)
        got = [n.payload for n in c.notifies(timeout=3, stop_after=1)]
    assert got == [m.store.schema]
    async def go():   # a scheduler that would otherwise look again only after 60 s
        async with Scheduler(host, poll=60, full_scan=600).running():
            await anyio.sleep(0.5)
            i, _ = m.submit('add', add, a=2, b=3)
            await wait_async(lambda: m.get_job(i).status == 'completed', timeout=5)
    anyio.run(go)

# ------------------------------------------------------------------ the dashboard: tenant scoping on every route, CSRF
def test_the_dashboard_shows_a_tenant_nothing_of_another(tmp_path):
    import re
    from fasthtml.common import fast_app
    from starlette.testclient import TestClient
    from fh_saas.db_host import SqliteHost
    from fh_saas.ui import mount_jobs, CSRF_FIELD
    host = SqliteHost(tmp_path)
    a, g = (BackgroundTaskManager(host.create(t), run_here=False) for t in ('acme', 'globex'))
    ja, _ = a.submit('add', add, a=1, b=1); jg, _ = g.submit('add', add, a=2, b=2)
    app, _ = fast_app()
    mount_jobs(app, lambda req: req.headers.get('x-tenant'), host=host)
    cli = TestClient(app, headers={'x-tenant': 'globex'}, follow_redirects=False)
    page = cli.get(f'/jobs/{jg}')
    assert page.status_code == 200
    tok = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', page.text).group(1)
    for path in (f'/jobs/{ja}', f'/jobs/{ja}/card', f'/jobs/{ja}/status'):
        assert cli.get(path).status_code == 404, path
    for path in ('/jobs', '/jobs/table'):
        html = cli.get(path).text
        assert jg[:8] in html and ja[:8] not in html, path
    for act in ('cancel', 'retry'):
        assert cli.post(f'/jobs/{ja}/{act}', data={CSRF_FIELD: tok}).status_code == 404, act
    assert a.get_job(ja).status == 'pending'
    assert cli.post(f'/jobs/{jg}/cancel').status_code == 403          # no token: refused
    assert g.get_job(jg).status == 'pending'
    assert cli.post(f'/jobs/{jg}/cancel', data={CSRF_FIELD: tok}).status_code == 303
    assert g.get_job(jg).status == 'cancelled'

# ------------------------------------------------------------------ stopping async tasks without cancel scopes
def test_a_cancel_arriving_after_the_task_ended_does_not_cancel_its_caller(tmp_path):
    "A request that lands while the outcome is being written must not interrupt that write (nor anything after it)."
    import asyncio
    from fh_saas.runner import JobContext, call_async
    st = JobStore(f"sqlite:///{tmp_path / 'a.db'}")
    ctx, stops = JobContext(st, dict(id='x', attempt=1, job_type='t')), []
    async def grabs(): stops.append(current_job().on_cancel); return 'done'
    async def go():
        out = await call_async(grabs, {}, ctx)
        stops[0]()                      # e.g. the lease keeper learns of a cancel just now, from its thread
        await asyncio.sleep(0.05)       # the caller goes on: writing the outcome, then the next job
        return out.kind
    assert asyncio.run(go()) == 'ok'

SLOW = (threading.Event(), [])  # `slow` started; `slow` ran to its end
async def slow():
    SLOW[0].set(); await anyio.sleep(1.0); SLOW[1].append(1)

def test_a_scheduler_cancelled_from_outside_stops_its_jobs_before_it_returns(host):
    "An async job must not run on after `serve` ended: its job is handed back then, and would run twice."
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    started, ended = SLOW
    started.clear(); ended.clear()
    i, _ = m.submit('slow', slow)
    sched = Scheduler(host, poll=0.1, schedules=(), task_modules=[__name__])
    async def go():
        async with anyio.create_task_group() as tg:
            await tg.start(sched.serve)
            while not started.is_set(): await anyio.sleep(0.01)
            tg.cancel_scope.cancel()    # the app's lifespan torn down, say: no `stop()`, no grace
        assert not sched._tasks
        await anyio.sleep(1.5)          # long enough for the task to have finished, had it run on
    anyio.run(go)
    assert not ended, "the job's task ran on after the scheduler had stopped"
    j = m.get_job(i)
    assert (j.status, j.retry_count) == ('pending', 0)   # handed back, no retry counted

def test_a_schedulers_job_tasks_are_let_go_and_never_hold_up_its_stop(tmp_path):
    "Each job's task leaves the scheduler when its job ends (it takes itself out), and a task that never began (cancelled before its first step, so it could not) does not keep the stop waiting."
    host = SqliteHost(tmp_path)   # the scheduler's own bookkeeping: the same on either backend
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    ids = [m.submit('add', add, a=1, b=i)[0] for i in range(20)]
    sched, kept, stopped = Scheduler(host, poll=0.1, schedules=(), task_modules=[__name__]), [], threading.Event()
    async def go():
        async with sched.running():
            await wait_async(lambda: all(m.get_job(i).status == 'completed' for i in ids), timeout=10)
            await anyio.sleep(0.05)
            kept.append(len(sched._tasks))
            never = asyncio.get_running_loop().create_task(asyncio.sleep(30)); never.cancel()
            sched._tasks.add(never)   # as a job's task cancelled before its first step: its `_run` never ran to take it out
        stopped.set()
    t = threading.Thread(target=anyio.run, args=(go,), daemon=True); t.start(); t.join(5)
    assert kept == [0], f"{kept} tasks of ended jobs kept by the scheduler"
    assert stopped.is_set(), "the scheduler's stop kept waiting for a task that never began"

def nap(s: float):
    time.sleep(s); return 'rested'

def test_a_cancelled_caller_still_waits_for_its_sync_jobs_thread(tmp_path):
    "A response's background task cancelled (the server stopping) while its sync job's thread runs: the job stays held until the thread ends, and its outcome is written."
    m = BackgroundTaskManager(f"sqlite:///{tmp_path / 'a.db'}", create=True)
    i, bg = m.submit('nap', nap, s=0.5)
    async def go():
        with anyio.move_on_after(0.1): await bg()   # cancelled while the thread sleeps
        return m.get_job(i).status
    assert anyio.run(go) == 'completed'

# ------------------------------------------------------------------ refills: a backlog's ends and next claim in one commit
async def anoop(): return None

RAN = []
async def ran(tenant): RAN.append(tenant)

def test_a_backlog_drained_in_refills_runs_each_job_once_and_keeps_every_slot_counted(tmp_path):
    "Each refilled job runs in the slot of an attempt that ended: once the backlog is done every slot is free again, none counted twice."
    from fh_saas.runner import outcome_hooks
    host = SqliteHost(tmp_path)   # refills are SQLite's
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    ids = {m.submit('anoop', anoop)[0] for _ in range(400)}
    sched, told, after = Scheduler(host, poll=0.1, schedules=(), task_modules=[__name__]), [], []
    hook = lambda store, row, outcome, started, ended: told.append((row['id'], outcome))
    async def go():
        async with sched.running():
            await wait_async(lambda: len(told) >= len(ids), timeout=20)
            await anyio.sleep(0.1)
            after.append((sched.threads.free, len(sched._handed), sum(sched.busy.values()), len(sched.active)))
    outcome_hooks.append(hook)
    try: anyio.run(go)
    finally: outcome_hooks.remove(hook)
    assert sched.stats.get('refills', 0) > 10, sched.stats   # the backlog did drain in refills
    assert sorted(told) == sorted((i, 'completed') for i in ids)   # each job once
    assert after == [(sched.concurrency, 0, 0, 0)], f"slots free, handed, busy, active after the drain: {after}"

@pytest.mark.parametrize('due', ['woken', 'by time'])
def test_refills_never_keep_a_second_tenants_jobs_to_one_slot(tmp_path, due, monkeypatch):
    """While one tenant's backlog drains in refills, a burst in another tenant gets its share of the slots, not the one
    slot refills leave: whether the burst woke the scheduler, or its jobs came due later with no one to wake it."""
    monkeypatch.setattr('fh_saas.store.WAL_LIMIT', 1 << 30)  # no checkpoint meanwhile: a group it holds up hands every slot back
    host = SqliteHost(tmp_path)
    a, b = (BackgroundTaskManager(host.create(t), run_here=False) for t in ('a', 'b'))
    for _ in range(3000): a.submit('ran', ran, tenant='a')
    RAN.clear()
    async def go():
        async with Scheduler(host, poll=0.1, schedules=(), task_modules=[__name__]).running():
            await wait_async(lambda: RAN.count('a') >= 200, timeout=20)
            at = None if due == 'woken' else time.time() + 0.1   # one due time: the 14 come due together, however
            for _ in range(14): b.enqueue('ran', ran, dict(tenant='b'), run_at=at)   # slowly a loaded machine writes them
            await wait_async(lambda: RAN.count('b') == 14, timeout=20)
        assert RAN.count('a') < 3000, "a's backlog ended before b's jobs ran: nothing was measured"
    anyio.run(go)
    first = RAN.index('b'); last = len(RAN) - 1 - RAN[::-1].index('b')
    between = RAN[first:last].count('a')
    assert between < 60, f"{between} of a's jobs ran while b's 14 did: b had about one slot"

def test_a_stopping_scheduler_claims_nothing_more(tmp_path, monkeypatch):
    "After `stop()` the jobs running end (grace) and nothing more is claimed, even when their ends would carry a claim."
    monkeypatch.setattr('fh_saas.store.WAL_LIMIT', 1 << 30)  # no checkpoint: a group it holds up would end the refills anyway
    host = SqliteHost(tmp_path)
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    for _ in range(3000): m.submit('ran', ran, tenant='acme')
    RAN.clear()
    sched, at_stop = Scheduler(host, poll=0.1, schedules=(), task_modules=[__name__]), []
    async def go():
        async with sched.running():
            await wait_async(lambda: len(RAN) >= 100, timeout=20)
            at_stop.append(len(RAN)); sched.stop()
    anyio.run(go)
    assert len(RAN) - at_stop[0] <= sched.concurrency, f"{len(RAN) - at_stop[0]} jobs ran after stop()"
    assert m.store.count(status='running') == 0

# ------------------------------------------------------------------ job threads: results handed back in batches
def test_results_ending_together_in_job_threads_each_reach_their_own_caller():
    "Threads hand back results that end together with one wake-up of the loop: every one of them still reaches its own future."
    threads = JobThreads(8, 'test-batch')
    def work(k):
        time.sleep(0.001 * (k % 3))   # many end together, in no fixed order
        return k * k
    async def go():
        with anyio.fail_after(10):
            for _ in range(5):
                assert await asyncio.gather(*[threads.run(work, k) for k in range(40)]) == [k * k for k in range(40)]
        return dict(threads.done)
    assert asyncio.run(go()) == {}   # nothing left waiting for a wake-up

# ------------------------------------------------------------------ a submit tells the scheduler which job it wrote
ORDER = []
async def note(tag): ORDER.append(tag)

def traced(monkeypatch):
    "Every statement the stores opened from now on send, as text: a counter of what a job costs."
    sent, connect = [], JobStore._connect
    def _connect(self, wait, create=False):
        c = connect(self, wait, create); c.set_trace_callback(sent.append); return c
    monkeypatch.setattr(JobStore, '_connect', _connect)
    return sent

@pytest.mark.parametrize('route', ['async', 'sync'])
def test_a_lone_submit_on_a_served_tenant_costs_three_statements(tmp_path, route, monkeypatch):
    """A route on a served app submits (from the loop, or from Starlette's thread pool for a sync route), the response
    goes out, Starlette awaits `bg_task`: the scheduler claims the job it was told of and finishes it; it reads no due
    times after it, and the `bg_task` sends it on no second look."""
    sent = traced(monkeypatch)
    host = SqliteHost(tmp_path); host.create('acme')
    sched = Scheduler(host, poll=30, schedules=(), task_modules=[__name__])
    async def go():
        async with sched.running():
            m = BackgroundTaskManager(host.url('acme'))
            first, _ = m.submit('anoop', anoop)   # the scheduler's first look at the tenant, and a job to warm up
            await wait_async(lambda: m.get_job(first).status == 'completed')
            await anyio.sleep(0.1); sent.clear()
            for n in range(20):
                if route == 'async': i, bg = m.submit('anoop', anoop)
                else: i, bg = await anyio.to_thread.run_sync(lambda: m.submit('anoop', anoop))
                for _ in range(3): await anyio.sleep(0)   # the response is sent
                await bg()
                await wait_async(lambda: sched.stats['runs'] >= 2 + n and not sched.active)
            return [s for s in sent if 'tenant_jobs' in s]
    sql = anyio.run(go)
    assert sched.stats['runs'] == 21
    def sent_like(*bits): return sum(all(b in s for b in bits) for s in sql)
    # besides these, the lease keeper's periodic reads and renewals may fall inside the run: not counted
    assert sent_like('MIN(run_at)') == 0, "due times were read after a job the scheduler was told of"
    assert (sent_like('INSERT INTO'), sent_like("SET status = 'running'"), sent_like('UPDATE', 'progress = CASE')) == (20, 20, 20), \
        "not one insert, one claim and one finish a job: " + str(sql)

@asynccontextmanager
async def served_and_idle(tmp_path, **kw):
    "A scheduler serving tenant acme (`kw`: its settings), and acme's manager, once a first job ran and the scheduler is idle."
    host = SqliteHost(tmp_path); host.create('acme')
    sched = Scheduler(host, poll=30, schedules=(), task_modules=[__name__], **kw)
    ORDER.clear(); FAILED_ONCE.clear()
    async with sched.running():
        m = BackgroundTaskManager(host.url('acme'))
        await m.submit('note', note, tag='warm-up')[1]()
        await wait_async(lambda: ORDER == ['warm-up'] and not sched.active)
        await anyio.sleep(0.1)
        yield m

def test_a_submit_told_to_the_scheduler_still_lets_a_higher_priority_job_go_first(tmp_path):
    "A job written where the scheduler was not told of it (another process), with a higher priority, runs before the one a submit told it of."
    async def go():
        async with served_and_idle(tmp_path, concurrency=1) as m:
            now = time.time()   # another process's job, due now, priority 10: written, nobody told
            m.store.insert(dict(id=gen_id(), job_type='note', status='pending', payload='{"tag": "other"}', priority=10,
                                created_at=timestamp(now), run_at=now, updated_at=timestamp(now), func_path=f'{__name__}:note'))
            await m.submit('note', note, tag='ours')[1]()
            await wait_async(lambda: len(ORDER) == 3)
    anyio.run(go)
    assert ORDER == ['warm-up', 'other', 'ours']

def test_a_job_a_submit_told_of_does_not_hide_a_later_due_time(tmp_path):
    "A delayed job is known to the scheduler; a job told of by a submit, claimed alone, leaves that due time known: the delayed job runs on time."
    async def go():
        async with served_and_idle(tmp_path) as m:
            t = time.monotonic()
            await m.enqueue('note', note, dict(tag='later'), delay=0.4)[1]()
            await anyio.sleep(0.1)
            await m.submit('note', note, tag='now')[1]()
            await wait_async(lambda: 'later' in ORDER, timeout=3)
            return time.monotonic() - t
    took = anyio.run(go)
    assert ORDER == ['warm-up', 'now', 'later']
    assert took < 1.2, f"the delayed job ran {took:.2f} s after it was written, 0.4 s asked"

FAILED_ONCE = set()
async def note_or_fail(tag):
    if tag not in FAILED_ONCE: FAILED_ONCE.add(tag); raise ConnectionError('first attempt fails')
    ORDER.append(tag)

@pytest.mark.parametrize('news', ['a retry', 'a submit'])
def test_news_the_scheduler_has_not_looked_at_is_not_hidden_by_a_job_a_submit_tells_it_of(tmp_path, news):
    """A job made due where the scheduler has not yet looked (a retry asked, or a first submit), then a submit of a
    higher-priority job in the same turn: the scheduler runs both, not only the one the last submit told it of."""
    async def go():
        async with served_and_idle(tmp_path) as m:
            if news == 'a retry':
                x, _ = m.enqueue('note_or_fail', note_or_fail, dict(tag='first'), max_retries=0)
                await wait_async(lambda: m.get_job(x).status == 'failed' and not m.store.runner.active)
                await anyio.sleep(0.1)
            if news == 'a retry': m.retry(x)
            else: m.submit('note', note, tag='first')
            m.enqueue('note', note, dict(tag='high'), priority=10)   # in the same turn of the loop
            await wait_async(lambda: len(ORDER) == 3, timeout=3)
    anyio.run(go)
    assert sorted(ORDER) == ['first', 'high', 'warm-up']

# ------------------------------------------------------------------ the scheduler's due times: a heap, no walk over every tenant
def test_the_due_times_heap_keeps_every_current_time_however_often_one_changes():
    "What is due and the earliest time come from the heap: right after a thousand changes of one store's time (the heap made again meanwhile), a store dropped, a time cleared."
    from fh_saas.scheduler import _DueTimes
    d, (a, b, c) = _DueTimes(), (object(), object(), object())
    d[a], d[b], d[c] = 5.0, None, 7.0
    for k in range(1000): d[b] = 100.0 + k
    d[b] = 6.0
    assert len(d._heap) < 200, "stale entries were never dropped"
    assert (d.due(4.0), d.due(6.5), d.due(7.0)) == ([], [a, b], [a, b, c])
    assert (d.first(lambda s: True), d.first(lambda s: s is not a), d.first(lambda s: False)) == (5.0, 6.0, None)
    d.pop(a); d[c] = None
    assert (d.due(10.0), d.first(lambda s: True)) == ([b], 6.0)

def test_a_connection_leaving_the_pool_is_closed_off_the_event_loop(tmp_path, monkeypatch):
    """Closing a file's last connection copies its log into the database, syncs it and deletes it: on a busy disk,
    hundreds of milliseconds. A connection that a write on the event loop pushes out of the pool (past the
    process-wide cap, as with many tenants) is closed by the store's background thread, never on the loop, which
    goes on at once; closed all the same, soon after."""
    import fh_saas.store as S
    monkeypatch.setattr(S, 'MAX_IDLE', 1)  # one idle connection in the whole process: the next tenant's evicts it
    a, b = JobStore(f"sqlite:///{tmp_path/'a.db'}"), JobStore(f"sqlite:///{tmp_path/'b.db'}")
    wal = Path(f"{a.path}-wal")
    def new(): return dict(id=gen_id(), job_type='x', status='pending', payload='{}', created_at='', run_at=0, updated_at='')
    gate = threading.Event()
    S._bg.submit(gate.wait, 10)  # the background thread busy for now: what it is handed waits its turn
    async def go():
        assert a.inline(a.insert, new())[0] and wal.exists()  # a's connection is idle, its log written
        assert b.inline(b.insert, new())[0]                   # over the cap: a's connection leaves the pool
        return wal.exists()
    try: kept = anyio.run(go)
    finally: gate.set()
    assert kept, "a's last connection was closed on the event loop (its log was copied and deleted there)"
    end = time.monotonic() + 5
    while wal.exists() and time.monotonic() < end: time.sleep(0.01)
    assert not wal.exists(), "a's evicted connection was never closed"

@pytest.mark.parametrize('cooldown, most', [(0.05, 1 / 3), (0, 1.0)])
def test_a_burst_of_submits_is_claimed_a_round_at_a_time(tmp_path, cooldown, most):
    """Submits that come faster than the scheduler's `cooldown` (a busy app's requests, a millisecond apart) are
    claimed several at a time, in a third as many claims as jobs at most, and each job runs once; with `cooldown=0`
    each submit is claimed on its own look, more claims than a cooldown allows. A cooldown that is not a number of
    seconds from 0 to 1 is refused. (50 ms and submits 1 ms apart, not the default 2 ms and submits with no gap: how
    many gapless submits one look finds without a cooldown moves with how fast the host wakes a thread, from 9 to 60
    of these 60, so on a slow host the two could not be told apart.)"""
    host = SqliteHost(tmp_path); host.create('acme')
    for bad in (-0.001, 2, 'soon', True, float('nan')):
        with pytest.raises(ValueError, match='cooldown'): Scheduler(host, cooldown=bad)
    sched, told = Scheduler(host, poll=30, schedules=(), task_modules=[__name__], cooldown=cooldown), []
    async def go():
        async with sched.running():
            m = BackgroundTaskManager(host.url('acme'))
            await m.submit('anoop', anoop)[1]()
            await wait_async(lambda: m.count_jobs(status='completed') == 1)
            ids = []
            for _ in range(60):
                i, bg = m.submit('anoop', anoop); ids.append(i)
                await bg(); await asyncio.sleep(0.001)   # the next request, a millisecond later
            await wait_async(lambda: m.count_jobs(status='completed') == 61, timeout=10)
            return ids
    ids = anyio.run(go)
    st = JobStore(host.url('acme'))
    rows = [st.get(i) for i in ids]
    assert all(r['status'] == 'completed' and r['attempt'] == 1 for r in rows)
    claims = len({r['claim_id'] for r in rows})
    assert claims <= most * len(ids), f"{claims} claims for a burst of {len(ids)} submits"
    if cooldown == 0: assert claims > len(ids) / 3   # the cooldown is what makes the difference, not the burst
