"Shared fixtures: free ports, uvicorn servers in real processes, polling helpers, one headless Chromium."
import os, sys, socket, subprocess, time, signal
from collections import Counter
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/'tests'/'artifacts'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def wait_port(port:int, proc=None, timeout:float=20.0):
    "Wait until something listens on 127.0.0.1:port (or the process died)."
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2): return
        except OSError: time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout} s")

def wait_for(pred, timeout:float=30.0, every:float=0.05, msg:str='condition'):
    "Poll `pred()` until it returns something truthy; return it."
    end = time.time() + timeout
    while time.time() < end:
        r = pred()
        if r: return r
        time.sleep(every)
    raise TimeoutError(f"{msg} not reached in {timeout} s")

def exec_runs(path, ids=()) -> Counter:
    """Runs per job in an execution log of job ids (`'\\n' + id + '\\n'`, one write each). A process killed while it
    writes can leave part of an id: the kernel copies a write a page at a time and SIGKILL stops it between two pages.
    The leading newline keeps the next id whole; a torn id counts as a run of the one job of `ids` it begins."""
    runs = Counter()
    for tok in Path(path).read_text().split():
        if len(tok) == 32: runs[tok] += 1
        elif len(m := [i for i in ids if i.startswith(tok)]) == 1: runs[m[0]] += 1
    return runs

class Clock:
    "A clock that the backoff sleep moves forward (`clock=clk, sleep=clk.sleep`): retries take no real time."
    def __init__(self): self.t, self.slept = time.time(), []
    def __call__(self): return self.t
    async def sleep(self, s): self.slept.append(s); self.t += s

class Server:
    "A uvicorn process serving `app_spec` (module:factory) on 127.0.0.1, with its env."
    def __init__(self, app_spec:str, env:dict|None=None, log:Path|None=None):
        self.app_spec, self.env, self.log = app_spec, env or {}, log
        self.port, self.proc = free_port(), None
    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]), **self.env)
        out = open(self.log, 'ab') if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, '-m', 'uvicorn', '--factory', self.app_spec, '--host', '127.0.0.1',
                                      '--port', str(self.port), '--log-level', 'warning'], env=env, stdout=out, stderr=out)
        wait_port(self.port, self.proc)
        return self
    @property
    def url(self): return f"http://127.0.0.1:{self.port}"
    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig); self.proc.wait(20)
    def stop(self): self.kill(signal.SIGTERM)

@pytest.fixture
def server_factory(tmp_path):
    servers = []
    def make(app_spec, **env):
        s = Server(app_spec, dict(env, DATA_DIR=str(env.get('DATA_DIR', tmp_path))), log=tmp_path/'server.log')
        servers.append(s)
        return s.start()
    yield make
    for s in servers: s.stop()

class RunningPg:
    "A PostgreSQL server someone else started (`$FH_SAAS_TEST_PG`, e.g. the mutation check's): `url` and `psql`."
    def __init__(self, url):
        from urllib.parse import urlsplit
        self.url, self.port = url, urlsplit(url).port
    def psql(self, sql, db=None):
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as c: c.execute(sql)

@pytest.fixture(scope='session')
def pg_server():
    "A PostgreSQL server (Debian's package) on 127.0.0.1 for the whole session, stopped at the end."
    if os.environ.get('FH_SAAS_TEST_PG'): yield RunningPg(os.environ['FH_SAAS_TEST_PG']); return
    from pgserver import PgServer
    srv = PgServer().start()
    yield srv
    srv.close()

@pytest.fixture(autouse=True)
def _pg_let_go():
    """After each test, this process closes its connections to every PostgreSQL server the test used. Each test makes
    its own database, and the pools and listener kept for it would otherwise stay open until the session ends: enough
    of them fill the server's `max_connections`, and the worker processes of a later test cannot connect."""
    yield
    pg = sys.modules.get('fh_saas.pg')
    if pg is not None: pg.disconnect()

_n = iter(range(10**6))

@pytest.fixture(params=['sqlite', 'postgresql'])
def host(request, tmp_path):
    "A tenant host on each backend: SQLite files in a temp folder, or a fresh database on the session's server."
    from fh_saas.db_host import SqliteHost
    if request.param == 'sqlite': return SqliteHost(tmp_path/'tenants')
    from fh_saas.pg import PgHost
    pg = request.getfixturevalue('pg_server')
    db = f"t{os.getpid()}_{next(_n)}"
    pg.psql(f"CREATE DATABASE {db} OWNER fh")
    return PgHost(pg.url.rsplit('/', 1)[0] + '/' + db)

@pytest.fixture(scope='module')
def chromium():
    """Debian's Chromium driven by Playwright, one per test module: the sync API's loop must not outlive the module,
    or tests after it could not run an event loop of their own."""
    if not Path(CHROMIUM).exists(): pytest.fail(f'{CHROMIUM} missing: apt-get install chromium')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
