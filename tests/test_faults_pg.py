"""PostgreSQL faults: a reply lost after the server committed, and a short server restart.

The lost reply is made by a real TCP proxy (tests/apps/pgproxy.py) between the client and the server: armed with a
byte marker, it forwards the statement holding it, waits until the server has committed it, and closes both sockets
without forwarding the reply. The client (psycopg through `PgJobStore._retrying`) sees a lost connection and retries.
"""
import os, signal, subprocess, sys, time
import psycopg
import pytest
from conftest import ROOT, wait_for
from apps.load_tasks import noop, sync_work, read_log
from apps.pgproxy import CutProxy
from fh_saas.pg import PgHost
from fh_saas.utils_bgtsk import BackgroundTaskManager, store_for

# The claim's UPDATE sets `status = 'running'`; no other statement of the store does (`_CLAIM_SET` in utils_bgtsk).
# If a rewrite words the claim differently, the tests below fail on `proxy.cuts == 1`: update this marker.
CLAIM_MARKER = b"SET status = 'running'"
INSERT_MARKER = b'INSERT INTO'

@pytest.fixture
def pg_db(pg_server):
    "A fresh database on the session's server: `(direct URL, port, db name)`."
    db = f"f{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    return pg_server.url.rsplit('/', 1)[0] + '/' + db, pg_server.port, db

@pytest.fixture
def proxy(pg_db):
    with CutProxy(('127.0.0.1', pg_db[1])) as px: yield px

def proxied(px, db) -> str:
    "The URL of `db` through the proxy; no SSL/GSS negotiation, so the stream is plain protocol messages."
    return f"postgresql://fh@127.0.0.1:{px.port}/{db}?sslmode=disable&gssencmode=disable"

def rows(url, sql):
    with psycopg.connect(url, autocommit=True) as c: return c.execute(sql).fetchall()

def test_lost_reply_to_a_submit_returns_its_id(pg_db, proxy):
    url, _, db = pg_db
    mgr = BackgroundTaskManager(PgHost(proxied(proxy, db)).create('acme'), run_here=False)
    proxy.arm(INSERT_MARKER)
    job_id, _ = mgr.submit('noop', noop)   # the insert commits, its reply is lost, the store retries
    assert proxy.cuts == 1, f"the proxy never cut a reply (marker {INSERT_MARKER!r} not seen): the test proved nothing"
    assert rows(url, "SELECT id FROM tenant_acme.tenant_jobs") == [(job_id,)]   # one row, the id we were given
    assert mgr.get_job(job_id).status == 'pending'

@pytest.mark.parametrize('tenant_limit', [None, 100], ids=['plain', 'tenant_limit'])
def test_lost_reply_to_a_claim_orphans_nothing(pg_db, proxy, tenant_limit):
    url, _, db = pg_db
    direct = BackgroundTaskManager(PgHost(url).create('acme'), run_here=False)
    ids = {direct.submit('noop', noop)[0] for _ in range(10)}
    store = store_for(PgHost(proxied(proxy, db)).create('acme'))
    proxy.arm(CLAIM_MARKER)
    try: got = store.claim_due(time.time(), 30.0, 'claimer-under-test', n=3, max_running=tenant_limit)
    except Exception as e:
        left = rows(url, "SELECT id, worker FROM tenant_acme.tenant_jobs WHERE status = 'running'")
        pytest.fail(f"claim_due raised {type(e).__name__}: {e}; rows left running: {left}")
    assert proxy.cuts == 1, f"the proxy never cut a reply (marker {CLAIM_MARKER!r} not seen): the test proved nothing"
    running = dict(rows(url, "SELECT id, attempt FROM tenant_acme.tenant_jobs WHERE status = 'running'"))
    returned = {r['id'] for r in got}
    assert set(running) == returned, (f"{len(running)} rows running, {len(returned)} returned to the claimer: "
                                      f"{len(set(running) - returned)} orphaned with a lease nobody holds")
    assert len(got) == 3 and returned <= ids                 # the retried claim found the rows it took
    assert set(running.values()) == {1}                      # each claimed once: one attempt, not two
    assert all(r['attempt'] == 1 for r in got)
    assert rows(url, "SELECT COUNT(*) FROM tenant_acme.tenant_jobs WHERE status = 'pending'") == [(7,)]

def test_a_3s_server_restart_costs_seconds(pg_server, pg_db, tmp_path):
    url, _, db = pg_db
    log = tmp_path/'exec.log'
    host = PgHost(url)
    mgr = BackgroundTaskManager(host.create('acme'), run_here=False)
    env = dict(os.environ, EXEC_LOG=str(log), PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]))
    out = open(tmp_path/'worker.log', 'ab')
    proc = subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', '--url', host.conninfo, '--poll', '1', '--lease', '3',
                             '--grace', '5', '--imports', 'apps.load_tasks'], env=env, stdout=out, stderr=out)
    try:
        warm = mgr.submit('sync_work', sync_work, ms=10)[0]   # the worker serves: its pool and listener are up
        wait_for(lambda: mgr.get_job(warm).status == 'completed', timeout=30, every=0.1, msg='warm-up job done')
        pg_server.restart(down_for=3)
        back = time.time()
        # a fresh pool in this process (its own connections were cut too): the time measured is the worker's
        probe = BackgroundTaskManager(PgHost(url + '?application_name=probe').url('acme'), run_here=False)
        job = probe.submit('sync_work', sync_work, ms=10)[0]
        submitted = time.time() - back
        try: wait_for(lambda: probe.get_job(job).status == 'completed', timeout=45, every=0.1, msg='job after restart')
        except TimeoutError: pass
        took = time.time() - back
        status = probe.get_job(job).status
        print(f"\npostgres down 3 s: submit {submitted:.1f} s after the server was back, job {status} "
              f"{took:.1f} s after it was back")
        assert proc.poll() is None, f"the worker exited ({proc.returncode}) after the restart"
        assert status == 'completed' and took < 15, f"job {status} {took:.1f} s after the server was back (want < 15 s)"
        assert sum(1 for r in read_log(log) if r['event'] == 'start' and r['id'] == job) == 1
    finally:
        if proc.poll() is None: proc.send_signal(signal.SIGTERM)
        try: proc.wait(30)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(10)
        out.close()

def test_lost_reply_to_a_batched_claim_orphans_nothing(pg_db, proxy):
    "One statement claims for two tenants; its reply is lost; the retry returns exactly the rows it took, per tenant."
    url, _, db = pg_db
    ids = {t: {BackgroundTaskManager(PgHost(url).create(t), run_here=False).submit('noop', noop)[0] for _ in range(5)}
           for t in ('acme', 'globex')}
    host = PgHost(proxied(proxy, db))
    acme, globex = (store_for(host.create(t)) for t in ('acme', 'globex'))
    proxy.arm(CLAIM_MARKER)
    got = acme.claim_batch([(acme, 3), (globex, 2)], time.time(), 30.0, 'claimer-under-test')
    assert proxy.cuts == 1, "the proxy never cut a reply: the test proved nothing"
    for t, rs, n in zip(('acme', 'globex'), got, (3, 2)):
        running = dict(rows(url, f"SELECT id, attempt FROM tenant_{t}.tenant_jobs WHERE status = 'running'"))
        assert set(running) == {r['id'] for r in rs}, f"{t}: rows running that the claimer was not given"
        assert len(rs) == n and {r['id'] for r in rs} <= ids[t]   # each tenant's rows back to that tenant
        assert set(running.values()) == {1}                        # claimed once, not twice

def test_lost_reply_to_a_grouped_finish_reports_what_landed(pg_db, proxy):
    "Attempts of two tenants end together through a proxy that loses the grouped write's reply: each learns it won."
    import threading
    from concurrent.futures import ThreadPoolExecutor
    url, _, db = pg_db
    for t in ('acme', 'globex'):
        m = BackgroundTaskManager(PgHost(url).create(t), run_here=False)
        for _ in range(3): m.submit('noop', noop)
    host = PgHost(proxied(proxy, db))
    stores = [store_for(host.create(t)) for t in ('acme', 'globex')]
    claimed = [(st, r) for st in stores for r in st.claim_due(time.time(), 30.0, 'w', n=3)]
    assert len(claimed) == 6
    proxy.arm(b"completed_at = f.now_s")
    go = threading.Barrier(6)
    def end(sr):
        go.wait(); return sr[0].finish(sr[1]['id'], sr[1]['attempt'], 'completed', time.time(), result='1')
    with ThreadPoolExecutor(6) as ex: won = list(ex.map(end, claimed))
    assert proxy.cuts == 1, "the proxy never cut a reply: the test proved nothing"
    assert won == ['completed'] * 6, f"a finish whose write landed was reported stale: {won}"
    for t in ('acme', 'globex'):
        assert rows(url, f"SELECT status, COUNT(*) FROM tenant_{t}.tenant_jobs GROUP BY status") == [('completed', 3)]
