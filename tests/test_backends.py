"One suite, every backend: the job life cycle behaves the same on SQLite files and on PostgreSQL."
import time, threading, functools
import anyio, pytest
from concurrent.futures import ThreadPoolExecutor
from fh_saas.utils_bgtsk import BackgroundTaskManager, JobNotFound, NoRetry, retry_delay
from fh_saas.scheduler import Scheduler
from conftest import Clock

def add(a, b): return a + b
def zero(): return 0
async def aadd(a, b): await anyio.sleep(0); return a + b
def always_fails(): raise ConnectionError('down')
def never_retry(): raise NoRetry('bad input')

def test_runs_sync_and_async_and_keeps_falsy_results(host):
    m = BackgroundTaskManager(host.create('acme'))
    for fn, kw, want in ((add, dict(a=1, b=2), 3), (aadd, dict(a=2, b=2), 4), (zero, {}, 0)):
        i, bg = m.submit(fn.__name__, fn, **kw)
        assert m.get_job(i).status == 'pending'
        anyio.run(bg)
        j = m.get_job(i)
        assert (j.status, j.result, j.attempt) == ('completed', want, 1)

def test_retries_then_fails_with_every_error_kept(host):
    clk = Clock()
    m = BackgroundTaskManager(host.create('acme'), clock=clk, sleep=clk.sleep)
    i, bg = m.submit('down', always_fails, max_retries=3)
    anyio.run(bg)
    j = m.get_job(i)
    assert (j.status, j.retry_count, j.attempt, clk.slept) == ('failed', 3, 4, [2.0, 4.0, 8.0])
    assert [e['attempt'] for e in j.error_log] == [1, 2, 3, 4] and 'ConnectionError: down' in j.error
    i, bg = m.submit('bad', never_retry); anyio.run(bg)
    assert (m.get_job(i).status, m.get_job(i).attempt) == ('failed', 1)

def test_bad_input_writes_nothing(host):
    m = BackgroundTaskManager(host.create('acme'))
    for args, kw in ((('', add), {}), (('add', add), dict(max_retries=-1)), (('add', add), dict(a=object())),
                     (('add', lambda: 1), {}), (('add', add), dict(a='x' * 300_000))):
        with pytest.raises((ValueError, TypeError)): m.submit(*args, **kw)
    assert m.count_jobs() == 0
    with pytest.raises(ValueError, match='status must be one of'): m.list_jobs(status="pending' OR '1'='1")
    m.submit('add', add, a=1, b=1)   # a table with a row, so a filter pasted into SQL would match it
    assert m.list_jobs(job_type="x' OR '1'='1") == [] and m.count_jobs(job_type="x' OR '1'='1") == 0
    assert m.count_jobs() == 1

def test_tenants_never_see_each_others_jobs(host):
    a, b = BackgroundTaskManager(host.create('acme')), BackgroundTaskManager(host.create('globex'))
    i, _ = a.submit('add', add, a=1, b=1)
    assert [j.id for j in a.list_jobs()] == [i] and b.list_jobs() == [] and b.count_jobs() == 0
    with pytest.raises(JobNotFound): b.get_job(i)
    with pytest.raises(JobNotFound): b.cancel(i)
    assert host.tenants() == ['acme', 'globex']

def test_one_attempt_runs_once_and_stale_writes_lose(host):
    m = BackgroundTaskManager(host.create('acme'))
    ids = [m.submit('add', add, a=k, b=k)[0] for k in range(200)]
    st, now = m.store, time.time()
    with ThreadPoolExecutor(4) as ex:   # four claimers at once, five jobs per claim
        claimed = list(ex.map(lambda w: [r['id'] for _ in range(20) for r in st.claim_due(now, 30, f"w{w}", 5)], range(4)))
    flat = [i for c in claimed for i in c]
    assert sorted(flat) == sorted(ids)          # every job claimed, none twice
    i = ids[0]
    assert st.claim(i, now, 30, 'late') is None
    assert st.finish(i, 1, 'completed', now, result='0')
    assert not st.finish(i, 1, 'failed', now) and not st.reschedule(i, 1, now, now, '[]')
    assert m.get_job(i).status == 'completed'

def test_expired_lease_is_rescued_and_counts_a_retry(host):
    m = BackgroundTaskManager(host.create('acme'))
    i, _ = m.submit('add', add, a=1, b=2)
    t = time.time()
    m.store.claim(i, t, 30, 'elsewhere:1:x')
    assert m.store.rescue(t + 10) == 0 and m.store.rescue(t + 31) == 1
    j = m.get_job(i)
    assert (j.status, j.retry_count) == ('pending', 1) and j.error.startswith('LeaseExpired')
    assert not m.store.finish(i, 1, 'completed', t + 32, result='3')

def test_controls(host):
    m = BackgroundTaskManager(host.create('acme'))
    i, bg = m.submit('add', add, a=1, b=1)
    assert m.cancel(i) == 'cancelled'; anyio.run(bg)
    assert (m.get_job(i).status, m.get_job(i).attempt) == ('cancelled', 0)
    _, bg = m.retry(i); anyio.run(bg)
    assert (m.get_job(i).status, m.get_job(i).result) == ('completed', 2)
    with pytest.raises(ValueError, match='only a failed or cancelled'): m.retry(i)
    k1, _ = m.enqueue('inv', add, dict(a=1, b=1), key='inv-1')
    k2, _ = m.enqueue('inv', add, dict(a=1, b=1), key='inv-1')
    assert k1 == k2 and m.count_jobs(job_type='inv') == 1
    later = BackgroundTaskManager(m.store, clock=lambda: time.time() + 3600)
    assert later.prune(60) == 1 and m.count_jobs() == 1   # the completed job went; the pending one stays

def test_tenant_limit_caps_running_jobs_across_claimers(host):
    m = BackgroundTaskManager(host.create('acme'))
    for k in range(20): m.submit('add', add, a=k, b=k)
    now = time.time()
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda w: len(m.store.claim_due(now, 30, f"w{w}", 5, max_running=3)), range(4)))
    assert sum(got) == 3 and m.count_jobs(status='running') == 3

def test_scheduler_runs_every_tenant(host):
    ms = [BackgroundTaskManager(host.create(t)) for t in ('acme', 'globex', 'initech')]
    async def go():
        async with Scheduler(host, poll=0.2).running():
            ids = [(m, m.submit('add', add, a=1, b=k)[0]) for k, m in enumerate(ms)]
            with anyio.fail_after(20):
                while not all(m.get_job(i).status == 'completed' for m, i in ids): await anyio.sleep(0.02)
    anyio.run(go)
    assert [m.list_jobs()[0].result for m in ms] == [1, 2, 3]

ORDER = []
def note(tenant): ORDER.append(tenant)

def test_a_big_backlog_does_not_starve_a_small_tenant(host):
    big, small = BackgroundTaskManager(host.create('big')), BackgroundTaskManager(host.create('small'))
    for _ in range(300): big.submit('note', note, tenant='big')
    small.submit('note', note, tenant='small')
    ORDER.clear()
    async def go():
        async with Scheduler(host, concurrency=2, per_tenant=2, poll=0.2).running():
            with anyio.fail_after(60):
                while len(ORDER) < 301: await anyio.sleep(0.02)
    anyio.run(go)
    assert ORDER.index('small') < 4, ORDER.index('small')   # served in the first round, not after the 300

def test_a_new_tenant_created_by_many_at_once_is_created_without_an_error(host):
    "Callers opening the same new tenant at the same moment (threads here, each on its own connection) all succeed: PostgreSQL's `CREATE ... IF NOT EXISTS` alone races in its catalogs."
    errors, tenants = [], [f"race{k}" for k in range(12)]
    for t in tenants:
        start = threading.Barrier(4)
        def create():
            start.wait()
            try: host.create(t)
            except Exception as e: errors.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
        threads = [threading.Thread(target=create) for _ in range(4)]
        for th in threads: th.start()
        for th in threads: th.join()
    assert errors == []
    for t in tenants:  # each tenant's table is whole: a job goes in and runs
        m = BackgroundTaskManager(host.url(t))
        i, bg = m.submit('add', add, a=1, b=1)
        anyio.run(bg)
        assert (m.get_job(i).status, m.get_job(i).result) == ('completed', 2)
