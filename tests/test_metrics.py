"""The metrics endpoint (`fh_saas.metrics`) on a real uvicorn app over real tenant databases, parsed with the
Prometheus client's own parser: per-tenant counts equal the rows, a due job's queue age, attempts counted by the
process that ran them, who may read it, and tenants that cannot be read; and the collector over PostgreSQL."""
import asyncio, subprocess, sys, time
import httpx, pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from conftest import wait_for
from fh_saas.db_host import SqliteHost
from fh_saas.jobs import STATUSES
from fh_saas.store import store_for
from fh_saas.utils_bgtsk import BackgroundTaskManager

TOKEN = 'test-scrape-token'
AUTH = {'authorization': f"Bearer {TOKEN}"}


def add(a: int, b: int): return a + b

def boom(): raise ValueError('boom')


def series(text: str) -> dict:
    "{name: {(label, value) pairs as a frozenset: value}} of every sample of a scrape, parsed by prometheus_client."
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples: out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out

def one(ser: dict, name: str, **labels) -> float:
    return ser[name][frozenset(labels.items())]


def scrape(srv, path='/metrics', **headers) -> dict:
    r = httpx.get(srv.url + path, headers=dict(AUTH, **headers), timeout=60)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers['content-type'] == 'text/plain; version=0.0.4; charset=utf-8'
    return series(r.text)


def assert_tenants_match(ser: dict, host, tenants):
    "Each tenant's `fh_saas_jobs` equals the statuses of its rows, read here, straight from its database."
    for t in tenants:
        st = store_for(host.url(t))
        for s in STATUSES: assert one(ser, 'fh_saas_jobs', tenant=t, status=s) == st.count(status=s), (t, s)


def test_endpoint_sqlite(server_factory, tmp_path):
    host = SqliteHost(tmp_path/'tenants')
    for t in ('acme', 'globex', 'initech'): host.create(t)
    # no idle connections kept: another process can then take a tenant's exclusive lock after the server read it
    srv = server_factory('apps.metrics_app:create_app', DATA_DIR=str(tmp_path/'tenants'), TOKEN=TOKEN,
                         FH_SAAS_IDLE_CONNECTIONS='0')
    runs = {'acme': ['add', 'add', 'add', 'boom'], 'globex': ['add', 'boom', 'boom']}
    for tenant, kinds in runs.items():
        with httpx.Client(base_url=srv.url) as user:   # a tenant user: a session, no token
            assert user.get(f"/login/{tenant}").status_code == 200
            for k in kinds: assert user.post(f"/run/{k}").status_code == 200
            assert user.get('/metrics').status_code == 403                        # the session is not the token
            assert user.get('/metrics', headers={'authorization': 'Bearer wrong'}).status_code == 403
    # initech: one due job that nobody runs (no scheduler in this app)
    BackgroundTaskManager(host.url('initech'), run_here=False).submit('add', add, a=1, b=1)

    def ended():
        return all(store_for(host.url(t)).count(status=s) == 0 for t in runs for s in ('pending', 'running'))
    wait_for(ended, 20, msg='jobs run by the server ended')
    time.sleep(0.2)
    ser = scrape(srv)
    assert_tenants_match(ser, host, ['acme', 'globex', 'initech'])
    assert (one(ser, 'fh_saas_jobs', tenant='acme', status='completed'), one(ser, 'fh_saas_jobs', tenant='acme', status='failed'),
            one(ser, 'fh_saas_jobs', tenant='globex', status='failed'), one(ser, 'fh_saas_jobs', tenant='initech', status='pending')) \
        == (3, 1, 2, 1)
    assert one(ser, 'fh_saas_jobs_failed_last_hour', tenant='globex') == 2
    assert one(ser, 'fh_saas_jobs_completed_last_hour', tenant='acme') == 3
    assert one(ser, 'fh_saas_queue_age_seconds', tenant='initech') > 0
    assert one(ser, 'fh_saas_queue_age_seconds', tenant='acme') == 0
    assert (one(ser, 'fh_saas_tenants'), one(ser, 'fh_saas_tenants_unreadable')) == (3, 0)
    # the attempts this server process ran: 4 completed adds, 3 failed booms, each timed and counted
    assert one(ser, 'fh_saas_attempts_total', job_type='add', outcome='completed') == 4
    assert one(ser, 'fh_saas_attempts_total', job_type='boom', outcome='failed') == 3
    assert one(ser, 'fh_saas_attempt_seconds_count', job_type='boom', outcome='failed') == 3
    waits = ser.get('fh_saas_queue_wait_seconds_count', {})
    assert waits.get(frozenset({('job_type', 'add')})) == 4, \
        f"queue waits observed: {waits}; the claimed row must carry run_at (fh_saas.store._RUN_COLS)"

    # the default gate: this machine only, and not through a proxy
    assert scrape(srv, '/metrics-local') and httpx.get(srv.url + '/metrics-local').status_code == 200
    for proxied in ({'x-forwarded-for': '203.0.113.9'}, {'forwarded': 'for=203.0.113.9'}, {'x-real-ip': '203.0.113.9'}):
        assert httpx.get(srv.url + '/metrics-local', headers=proxied).status_code == 403, proxied

    # a corrupt tenant file, and a tenant whose lock another process holds (exclusive locking mode: no reader gets
    # in), do not break the scrape: they are skipped and counted
    broken = host.path('broken'); broken.write_bytes(b'not a database at all' * 50)
    store_for(host.url('initech')).close()          # this process's idle connections to it: the lock needs them gone
    locker = subprocess.Popen([sys.executable, '-c', f"""
import sqlite3, time
c = sqlite3.connect({str(host.path('initech'))!r}, isolation_level=None)
c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE'); c.execute('SELECT 1 FROM tenant_jobs').fetchall()
print('locked', flush=True); time.sleep(60)"""], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == 'locked', locker.stderr.read()
        ser = scrape(srv)
        assert (one(ser, 'fh_saas_tenants'), one(ser, 'fh_saas_tenants_unreadable')) == (4, 2)
        assert_tenants_match(ser, host, ['acme', 'globex'])
        assert not any(dict(k).get('tenant') in ('broken', 'initech') for k in ser['fh_saas_jobs'])
    finally:
        locker.kill(); locker.wait()
    assert broken.read_bytes()[:21] == b'not a database at all'   # left as it was
    assert host.tenants() == ['acme', 'broken', 'globex', 'initech']
    broken.unlink()
    ser = scrape(srv)
    assert (one(ser, 'fh_saas_tenants'), one(ser, 'fh_saas_tenants_unreadable')) == (3, 0)
    assert_tenants_match(ser, host, ['acme', 'globex', 'initech'])


def test_collector_reads_every_backend(host):
    "The collector reads each tenant of a `SqliteHost` or a `PgHost`; a tenant it cannot read is counted, not raised."
    from fh_saas.metrics import metrics_registry, TenantCollector
    for t in ('acme', 'globex', 'hooli'): host.create(t)
    acme, globex = BackgroundTaskManager(host.url('acme')), BackgroundTaskManager(host.url('globex'))
    async def run():
        for k in range(2): await acme.submit('add', add, a=k, b=k)[1]()
        await acme.submit('boom', boom, max_retries=0)[1]()
        await globex.submit('boom', boom, max_retries=0)[1]()
    asyncio.run(run())
    BackgroundTaskManager(host.url('globex'), run_here=False).submit('add', add, a=1, b=1)
    time.sleep(0.05)
    ser = series(generate_latest(metrics_registry(host, attempts=False)).decode())
    assert_tenants_match(ser, host, ['acme', 'globex', 'hooli'])
    assert (one(ser, 'fh_saas_jobs', tenant='acme', status='completed'), one(ser, 'fh_saas_jobs', tenant='globex', status='pending')) == (2, 1)
    assert one(ser, 'fh_saas_jobs_failed_last_hour', tenant='acme') == 1
    assert one(ser, 'fh_saas_queue_age_seconds', tenant='globex') > 0
    assert (one(ser, 'fh_saas_tenants'), one(ser, 'fh_saas_tenants_unreadable')) == (3, 0)
    # break one tenant: its table is gone (PostgreSQL), or its file is not a database (SQLite)
    if host.kind == 'postgresql':
        import psycopg
        with psycopg.connect(host.conninfo, autocommit=True) as c: c.execute('DROP TABLE tenant_hooli.tenant_jobs')
    else:
        store_for(host.url('hooli')).close()
        host.path('hooli').write_bytes(b'x' * 4096)
        for suffix in ('-wal', '-shm'): host.path('hooli').with_name('hooli.db' + suffix).unlink(missing_ok=True)
    ser = series(generate_latest(metrics_registry(host, attempts=False)).decode())
    assert (one(ser, 'fh_saas_tenants'), one(ser, 'fh_saas_tenants_unreadable')) == (3, 1)
    assert_tenants_match(ser, host, ['acme', 'globex'])
    assert host.tenants() == ['acme', 'globex', 'hooli']   # nothing created, nothing repaired
    with pytest.raises(LookupError): TenantCollector(host).read_tenant('ghost', time.time())   # never creates one
    assert not host.exists('ghost')

def test_a_worker_serves_its_attempts_on_its_metrics_port(tmp_path):
    "`fh-saas-worker --metrics-port`: the attempts that worker ran, as Prometheus text on 127.0.0.1."
    import os
    from pathlib import Path
    from conftest import free_port, wait_port
    root = Path(__file__).resolve().parent.parent
    host = SqliteHost(tmp_path/'tenants'); host.create('acme')
    m = BackgroundTaskManager(host.url('acme'), run_here=False)
    for n in range(3): m.enqueue('work', __import__('json').dumps, dict(obj=n))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(root))
    p = subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', '--sqlite-dir', str(tmp_path/'tenants'), '--imports', 'json',
                          '--poll', '0.2', '--grace', '1', '--metrics-port', str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, p)
        wait_for(lambda: m.count_jobs(status='completed') == 3, 20, msg='the worker ran the jobs')
        text = httpx.get(f'http://127.0.0.1:{port}/metrics', timeout=5).text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        done = [s for s in fams['fh_saas_attempts'].samples if s.name == 'fh_saas_attempts_total'
                and s.labels.get('job_type') == 'work' and s.labels.get('outcome') == 'completed']
        assert done and done[0].value == 3, fams['fh_saas_attempts'].samples
        assert 'fh_saas_jobs' not in fams, "a worker serves its own attempts, not every tenant's figures"
    finally:
        p.terminate(); p.wait(20)
