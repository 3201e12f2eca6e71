"""Safe by default (issue 11; DESIGN.md "Invariants of safety"), tried from outside as an attacker or a careless caller:

1. only declared tasks run: a row naming `os:system`, `subprocess:run` or an undeclared module runs nothing, imports
   nothing, and fails at once with "not a declared task" (in-process runner, and a real worker process);
2. `submit` refuses a job_type that names another registered task, and arguments that do not fit the function;
3. a PostgreSQL URL names exactly one valid tenant schema or is refused; lookalike tenant ids never share storage;
4. no password in a repr, an error, a log line or a page; job types and messages are logged quoted (no forged lines);
5. reading never creates: unknown tenants are 404 on the dashboard and nothing appears on disk or in the server;
6. times, RetryAfter, error text, results and the error log are validated and capped;
7. every hostile stored value renders the dashboard with status 200; a '?' in the SQLite folder merges nothing;
   tracebacks are hidden from dashboard users unless asked for;
8. the same bad input gets the same ValueError on SQLite and PostgreSQL, and writes nothing.

Real SQLite files, a real PostgreSQL (conftest `host` / `pg_server`), a real `python -m fh_saas.worker` process.
Task functions live in tests/apps/security_tasks.py; hostile modules are written to a temp folder per test.
"""
import json, logging, os, re, signal, sqlite3, subprocess, sys, threading, time, uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit, quote
import anyio, pytest
from conftest import ROOT, wait_for
from apps import security_tasks as T
from fh_saas.db_host import SqliteHost, gen_id, timestamp
from fh_saas.scheduler import Scheduler
from fh_saas.utils_bgtsk import BackgroundTaskManager

FINISHED = ('completed', 'failed', 'cancelled')
NOT_DECLARED = 'not a declared task'
PW = 's3cretpw'
NAN, INF = float('nan'), float('inf')
TRACEBACK = 'Traceback (most recent call last)'

# ---------------------------------------------------------------- helpers
class Clock:
    "A clock that the backoff sleep moves forward: retries take no real time."
    def __init__(self): self.t = time.time()
    def __call__(self): return self.t
    async def sleep(self, s): self.t += s

def is_sqlite(host): return isinstance(host, SqliteHost)

def pg_schema(tenant):
    from fh_saas.pg import tenant_schema
    return tenant_schema(tenant)

def raw_insert(host, tenant, **cols) -> str:
    "A row written straight into the tenant's table with plain SQL (as anyone who can write one row could)."
    now = time.time()
    r = dict(id=gen_id(), job_type='x', status='pending', payload='{}', created_at=timestamp(now), run_at=now - 1,
             updated_at=timestamp(now), max_retries=3, func_path=None)
    r.update(cols)
    names = ', '.join(r)
    if is_sqlite(host):
        with closing(sqlite3.connect(host.path(tenant), timeout=10)) as c:
            c.execute(f"INSERT INTO tenant_jobs ({names}) VALUES ({', '.join(':' + k for k in r)})", r); c.commit()
    else:
        import psycopg
        with psycopg.connect(host.conninfo, autocommit=True) as c:
            c.execute(f'INSERT INTO "{pg_schema(tenant)}".tenant_jobs ({names}) '
                      f'VALUES ({", ".join(f"%({k})s" for k in r)})', r)
    return r['id']

def pg_schemas(conninfo) -> list:
    import psycopg
    with psycopg.connect(conninfo, autocommit=True) as c:
        return sorted(r[0] for r in c.execute("SELECT nspname FROM pg_namespace").fetchall())

def storage(host) -> list:
    "What exists in the host's storage: the files of the SQLite folder (not -wal/-shm), or the server's schemas."
    if is_sqlite(host):
        return sorted(p.name for p in host.path('acme').parent.iterdir() if not p.name.endswith(('-wal', '-shm')))
    return pg_schemas(host.conninfo)

def new_db(pg_server, prefix='s') -> str:
    db = f"{prefix}{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    return db

def db_url(pg_server, db) -> str: return pg_server.url.rsplit('/', 1)[0] + '/' + db

async def run_bounded(m, job_id, limit=20.0):
    with anyio.fail_after(limit): return await m.run(job_id)

def module_file(folder: Path, prefix: str, body: str) -> str:
    "Write a throwaway module with a fresh name into `folder`; its name."
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    (folder/f"{name}.py").write_text(body)
    return name

EVIL = """
open({imported!r}, 'w').write('imported')   # at import time: must never happen
def run(path): open(path, 'w').write('ran')
"""
DECLARED = """
def run(path): open(path, 'w').write('ran')
"""

def app_for(tenant_of, host=None, **kw):
    from fasthtml.common import fast_app
    from fh_saas.ui import mount_jobs
    app, _ = fast_app(secret_key='security-test-only')
    mount_jobs(app, tenant_of, host=host, **kw)
    return app

def client(app):
    from starlette.testclient import TestClient
    return TestClient(app, raise_server_exceptions=False)

# ---------------------------------------------------------------- 1. only declared tasks run
def test_1_a_row_naming_any_function_runs_nothing_in_process(host, tmp_path, monkeypatch):
    "Rows naming os:system, subprocess:run or an undeclared module: nothing runs or is imported; failed at once."
    monkeypatch.delenv('FH_SAAS_TASK_MODULES', raising=False)
    mods = tmp_path/'mods'; mods.mkdir()
    imported = tmp_path/'evil_imported'
    evil = module_file(mods, 'sec_evil', EVIL.format(imported=str(imported)))
    monkeypatch.syspath_prepend(str(mods))
    clk = Clock()
    m = BackgroundTaskManager(host.create('acme'), clock=clk, sleep=clk.sleep, run_here=True)
    marks = {k: tmp_path/f"marker_{k}" for k in ('system', 'run', 'evil')}
    rows = {'os:system': raw_insert(host, 'acme', func_path='os:system',
                                    payload=json.dumps({'command': f"touch {marks['system']}"})),
            'subprocess:run': raw_insert(host, 'acme', func_path='subprocess:run',
                                         payload=json.dumps({'args': ['touch', str(marks['run'])]})),
            'undeclared module': raw_insert(host, 'acme', func_path=f'{evil}:run',
                                            payload=json.dumps({'path': str(marks['evil'])}))}
    for i in rows.values(): anyio.run(run_bounded, m, i)
    ran = [k for k, p in marks.items() if p.exists()]
    assert not ran, f"a row ran a function nobody declared: {ran}"
    assert not imported.exists() and evil not in sys.modules, "a module named only in a row was imported"
    for what, i in rows.items():
        j = m.get_job(i)
        assert (j.status, j.attempt, j.retry_count) == ('failed', 1, 0), (what, j.status, j.attempt, j.retry_count)
        assert NOT_DECLARED in (j.error or ''), (what, j.error)
    # a module the app lists in task_modules is declared: its function runs from a row
    ok = tmp_path/'declared_ran'
    i = raw_insert(host, 'acme', func_path='apps.security_tasks:touch', payload=json.dumps({'path': str(ok)}))
    d = BackgroundTaskManager(host.url('acme'), clock=clk, sleep=clk.sleep, run_here=True,
                              task_modules=['apps.security_tasks'])
    anyio.run(run_bounded, d, i)
    assert d.get_job(i).status == 'completed' and ok.exists()

def test_1_b_a_worker_process_runs_declared_tasks_only(host, tmp_path):
    "A real worker (`--imports apps.security_tasks`, `$FH_SAAS_TASK_MODULES`): declared rows run, the rest never."
    mods = tmp_path/'mods'; mods.mkdir()
    imported = tmp_path/'evil_imported'
    evil = module_file(mods, 'sec_evil', EVIL.format(imported=str(imported)))
    envdecl = module_file(mods, 'sec_envdecl', DECLARED)
    host.create('acme')
    m = BackgroundTaskManager(host.url('acme'), run_here=False)
    mk = lambda k: tmp_path/f"marker_{k}"
    bad = {'os:system': raw_insert(host, 'acme', func_path='os:system',
                                   payload=json.dumps({'command': f"touch {mk('system')}"})),
           'subprocess:run': raw_insert(host, 'acme', func_path='subprocess:run',
                                        payload=json.dumps({'args': ['touch', str(mk('run'))]})),
           'undeclared module': raw_insert(host, 'acme', func_path=f'{evil}:run',
                                           payload=json.dumps({'path': str(mk('evil'))}))}
    good = {'--imports module': raw_insert(host, 'acme', func_path='apps.security_tasks:touch',
                                           payload=json.dumps({'path': str(mk('imports'))})),
            '@task': raw_insert(host, 'acme', job_type='sec_registered_touch',
                                payload=json.dumps({'path': str(mk('registered'))})),
            'FH_SAAS_TASK_MODULES': raw_insert(host, 'acme', func_path=f'{envdecl}:run',
                                               payload=json.dumps({'path': str(mk('env'))}))}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests'), str(mods)]),
               FH_SAAS_TASK_MODULES=envdecl)
    env.pop('FH_SAAS_RUN_JOBS', None)
    src = ['--sqlite-dir', str(host.path('acme').parent)] if is_sqlite(host) else ['--url', host.conninfo]
    cwd = tmp_path/'cwd'; cwd.mkdir()
    log = tmp_path/'worker.log'
    with open(log, 'ab') as out:
        p = subprocess.Popen([sys.executable, '-m', 'fh_saas.worker', *src, '--poll', '0.2', '--concurrency', '4',
                              '--grace', '2', '--imports', 'apps.security_tasks'], env=env, cwd=cwd, stdout=out, stderr=out)
    try:
        ids = list(bad.values()) + list(good.values())
        wait_for(lambda: all(m.get_job(i).status in FINISHED for i in ids), timeout=40, every=0.2,
                 msg='every row finished by the worker')
    except TimeoutError as e:
        raise AssertionError(f"{e}; worker log:\n{log.read_text()[-3000:]}")
    finally:
        if p.poll() is None: p.send_signal(signal.SIGTERM)
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill(); p.wait()
    ran = [k for k in ('system', 'run', 'evil') if mk(k).exists()]
    assert not ran, f"the worker ran functions nobody declared: {ran}"
    assert not imported.exists(), "the worker imported a module named only in a row"
    for what, i in bad.items():
        j = m.get_job(i)
        assert (j.status, j.attempt) == ('failed', 1) and NOT_DECLARED in (j.error or ''), (what, j.status, j.error)
    for what, i in good.items():
        j = m.get_job(i)
        assert j.status == 'completed', (what, j.status, j.error, log.read_text()[-2000:])
    assert all(mk(k).exists() for k in ('imports', 'registered', 'env'))

# ---------------------------------------------------------------- 2. submit: no borrowed names, arguments that fit
def test_1_d_a_job_run_the_moment_its_row_is_written_is_declared(host, tmp_path, monkeypatch):
    "A scheduler thread that claims a submit before `submit` returns runs it: the submit declared it before the write."
    monkeypatch.delenv('FH_SAAS_TASK_MODULES', raising=False)
    mods = tmp_path/'mods'; mods.mkdir()
    fresh = module_file(mods, 'sec_fresh', DECLARED)   # never submitted in this process before
    monkeypatch.syspath_prepend(str(mods))
    mod = __import__(fresh)
    m = BackgroundTaskManager(host.create('acme'), run_here=True)
    other = BackgroundTaskManager(host.url('acme'), run_here=True)   # another thread's runner, as a scheduler's
    seen, insert = {}, m.store.insert
    def insert_then_run_elsewhere(row, *a, **kw):      # the row is committed; another thread runs it before we return
        job_id = insert(row, *a, **kw)
        t = threading.Thread(target=lambda: seen.setdefault('status', anyio.run(run_bounded, other, job_id)))
        t.start(); t.join(30)
        return job_id
    monkeypatch.setattr(m.store, 'insert', insert_then_run_elsewhere)
    mark = tmp_path/'ran'
    job_id, _ = m.submit('fresh', mod.run, path=str(mark))
    j = m.get_job(job_id)
    assert NOT_DECLARED not in (j.error or ''), f"the submitted function was refused: {j.error}"
    assert j.status == 'completed' and mark.exists(), (j.status, j.error)

def test_1_c_a_declaration_by_the_environment_ends_with_it(monkeypatch):
    "A module declared by $FH_SAAS_TASK_MODULES alone is run from rows only while the variable declares it."
    from fh_saas.jobs import resolve, TaskRegistry, UndeclaredTask
    path = 'apps.security_tasks:touch'
    monkeypatch.setenv('FH_SAAS_TASK_MODULES', 'apps.security_tasks')
    assert callable(resolve('touch', path, TaskRegistry()))
    assert callable(resolve('touch', path, TaskRegistry()))    # the second look comes from the cache
    monkeypatch.setenv('FH_SAAS_TASK_MODULES', 'other_tasks')
    with pytest.raises(UndeclaredTask): resolve('touch', path, TaskRegistry())

def test_2_submit_refuses_a_borrowed_name_and_arguments_that_do_not_fit(host):
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    with pytest.raises(ValueError, match='registered'):
        m.submit('sec_delete_account', T.make_report, user_id='u1')   # would run the registered sec_delete_account
    assert m.count_jobs() == 0
    wrong = {"positional 5 (max_retries? an argument?)": lambda: m.submit('x', T.make_report, 5),
             'a required argument missing': lambda: m.submit('x', T.make_report),
             'an unknown keyword': lambda: m.submit('x', T.make_report, user_id='u1', extra=1),
             'enqueue: unknown keyword': lambda: m.enqueue('x', T.make_report, {'nope': 1}),
             'enqueue: one too many': lambda: m.enqueue('x', T.nest, {'x': 1, 'y': 2})}
    accepted = []
    for what, call in wrong.items():
        try: call(); accepted.append(what)
        except TypeError as e: assert 'argument' in str(e), (what, str(e))
        assert m.count_jobs() == 0, f"{what}: a row was written"
    assert not accepted, f"accepted arguments that do not fit the task: {accepted}"
    # what fits is accepted: the registered function under its own name, a fitting call, **kwargs
    m.submit('sec_delete_account', T.sec_delete_account, user_id='u1')
    m.submit('x', T.make_report, user_id='u1'); m.submit('x', T.takes_any, anything=1)
    assert m.count_jobs() == 3

def test_2_b_a_call_that_fitted_before_lets_no_later_call_through(host):
    """What the checks of a submit's arguments remember lets no later call through: a function that fitted a call with
    no arguments still refuses an unknown keyword, and one that fitted a call with arguments still refuses a call
    that leaves a required one out."""
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    for _ in range(2): m.submit('x', T.nest)   # no arguments, and none needed
    with pytest.raises(TypeError, match='argument'): m.submit('x', T.nest, y=1)
    for _ in range(2): m.submit('x', T.make_report, user_id='u1')
    with pytest.raises(TypeError, match='argument'): m.submit('x', T.make_report)
    assert m.count_jobs() == 4

# ---------------------------------------------------------------- 3. one URL, one tenant schema
def test_3_a_pg_url_must_name_exactly_one_tenant_schema(pg_server):
    from fh_saas.pg import PgHost
    base = db_url(pg_server, new_db(pg_server))
    q = lambda *opts: base + ('?' + '&'.join(f"options={quote(o)}" for o in opts) if opts else '')
    bad = {'org.1': q('-csearch_path=org.1'), 'org': q('-csearch_path=org'), 'Acme': q('-csearch_path=Acme'),
           'public': q('-csearch_path=public'), 'tenant_org.1 (prefix of tenant org)': q('-csearch_path=tenant_org.1'),
           'tenant_Acme': q('-csearch_path=tenant_Acme'), 'tenant_ (no id)': q('-csearch_path=tenant_'),
           'no search_path': q(), 'two paths, comma': q('-csearch_path=tenant_a,tenant_b'),
           'two paths, one options': q('-csearch_path=tenant_a -csearch_path=tenant_b'),
           'two options parameters': q('-csearch_path=tenant_a', '-csearch_path=tenant_b')}
    PgHost(base).create('acme')   # the server has a real tenant: a fallback would have somewhere to go
    before = pg_schemas(base)
    wrong = {}
    for what, url in bad.items():
        try: BackgroundTaskManager(url, run_here=False); wrong[what] = 'accepted'
        except ValueError: pass
        except Exception as e: wrong[what] = f"{type(e).__name__}: {e}"
    assert not wrong, f"URLs not naming exactly one tenant schema, not refused with ValueError: {wrong}"
    assert pg_schemas(base) == before, "a refused URL created a schema"

def test_3_b_lookalike_tenant_ids_never_share_storage(host):
    pairs = [('org-1', 'org_1'), ('a1', 'a-1'), ('x-y_z', 'x_y-z')]
    for a, b in pairs:
        ma, mb = (BackgroundTaskManager(host.create(t), run_here=False) for t in (a, b))
        ia, ib = ma.submit('x', T.make_report, user_id=a)[0], mb.submit('x', T.make_report, user_id=b)[0]
        assert [j.id for j in ma.list_jobs()] == [ia] and [j.id for j in mb.list_jobs()] == [ib], (a, b)
    assert set(host.tenants()) == {t for p in pairs for t in p}

# ---------------------------------------------------------------- 4. no secrets; logged quoted
def spy_url(pg_server) -> str:
    "A database owned by a role with a password (trust auth: the password is sent, not needed)."
    pg_server.psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fhspy') THEN "
                   f"CREATE ROLE fhspy LOGIN SUPERUSER PASSWORD '{PW}'; END IF; END $$")
    db = f"spy{os.getpid()}_{time.time_ns() % 10**9}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fhspy")
    p = urlsplit(pg_server.url)
    return f"postgresql://fhspy:{PW}@{p.hostname}:{p.port}/{db}"

def error_text(e: BaseException) -> str:
    out, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e)); out += [str(e), repr(e)]; e = e.__cause__ or e.__context__
    return '\n'.join(out)

def test_4_a_no_password_in_reprs_errors_logs_or_pages(pg_server, caplog):
    from fh_saas.pg import PgHost
    caplog.set_level(logging.DEBUG, logger='fh_saas')
    url = spy_url(pg_server)
    host = PgHost(url)
    turl = host.create('acme')
    m = BackgroundTaskManager(turl, run_here=False)
    texts = {'repr(host)': repr(host), 'repr(manager)': repr(m), 'repr(store)': repr(m.store), 'str(store)': str(m.store),
             'repr(Scheduler(host))': repr(Scheduler(host)), 'repr(Scheduler([url]))': repr(Scheduler([turl]))}
    for what, call in {'manager for a missing tenant': lambda: BackgroundTaskManager(host.url('nosuch')),
                       'manager for a bad search_path': lambda: BackgroundTaskManager(url + '?options=-csearch_path%3Dorg.1'),
                       'manager for two search paths': lambda: BackgroundTaskManager(
                           url + '?options=' + quote('-csearch_path=tenant_a,tenant_b')),
                       'missing job': lambda: m.get_job('0' * 32),
                       'bad filter': lambda: m.list_jobs(status='bogus')}.items():
        try: call()
        except Exception as e: texts[f"error: {what}"] = error_text(e)
    i, _ = m.submit('sec_fails', T.always_fails, max_retries=0)
    ghost = host.url('ghost')   # a tenant that does not exist, served from a list of URLs
    async def go():
        with anyio.fail_after(40):
            async with Scheduler(host, poll=0.1).running():
                while m.get_job(i).status not in FINISHED: await anyio.sleep(0.05)
            async with Scheduler([turl, ghost], poll=0.1).running(): await anyio.sleep(1.0)
    anyio.run(go)
    assert m.get_job(i).status == 'failed'
    m.submit('sec_late', T.make_report, user_id='u1')   # pending, with nobody to run it: read an hour later, overdue
    late = BackgroundTaskManager(m.store, run_here=False, clock=lambda: time.time() + 3600)
    late.list_jobs(); late.get_job(i)
    with client(app_for(lambda req: m)) as cli:
        for path in ('/jobs', f'/jobs/{i}', f'/jobs/{i}/card'):
            r = cli.get(path); texts[f"page {path} ({r.status_code})"] = r.text
    assert caplog.records, "nothing was logged: the test proved nothing"
    leaks = [k for k, v in texts.items() if PW in v]
    leaks += [f"log {r.name} {r.levelname}: {r.getMessage()[:300]}" for r in caplog.records if PW in r.getMessage()]
    if PW in caplog.text and not leaks: leaks.append('the formatted log (a traceback?)')
    assert not leaks, "the password shows in:\n" + '\n'.join(leaks)

def test_4_b_job_types_and_messages_are_logged_quoted(host, caplog):
    "A task's message with a newline cannot forge a log line; the job type is quoted where it is logged."
    caplog.set_level(logging.DEBUG, logger='fh_saas')
    m = BackgroundTaskManager(host.create('acme'))
    i, bg = m.submit('sec_multiline', T.fails_multiline, max_retries=0)
    anyio.run(bg)
    assert m.get_job(i).status == 'failed'
    msgs = [r.getMessage() for r in caplog.records]
    told = [s for s in msgs if 'forged' in s]
    assert told, "the failed attempt was not logged"
    raw = [s for s in told if '\n' in s or '\r' in s]
    assert not raw, f"a task's message put a raw line break in the log: {raw}"
    typed = [s for s in msgs if 'sec_multiline' in s]
    unquoted = [s for s in typed if "'sec_multiline'" not in s and '"sec_multiline"' not in s]
    assert typed and not unquoted, f"the job type is logged unquoted: {unquoted}"

# ---------------------------------------------------------------- 5. reading never creates
def test_5_a_dashboard_gets_for_unknown_tenants_are_404_and_create_nothing(host):
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    i, _ = m.submit('x', T.make_report, user_id='u1')
    before = storage(host)
    app = app_for(lambda req: req.headers.get('x-tenant'), host=host)
    paths = ['/jobs', '/jobs/table', f'/jobs/{i}', f'/jobs/{i}/card', f'/jobs/{i}/status']
    with client(app) as cli:
        for p in ('/jobs', f'/jobs/{i}'): assert cli.get(p, headers={'x-tenant': 'acme'}).status_code == 200
        for k in range(200):
            t, p = (f"ghost{k}", f"sub-{k}", f"t_{k}", f"www{k}")[k % 4], paths[k % len(paths)]
            r = cli.get(p, headers={'x-tenant': t})
            assert r.status_code == 404, f"GET {p} for made-up tenant {t!r}: {r.status_code}"
    assert storage(host) == before, "GETs for made-up tenants created storage"
    assert host.tenants() == ['acme']

def test_5_b_a_manager_for_a_missing_tenant_is_an_error(host):
    host.create('acme')
    before = storage(host)
    with pytest.raises(LookupError): BackgroundTaskManager(host.url('nosuch'))
    assert storage(host) == before and host.tenants() == ['acme']
    BackgroundTaskManager(host.create('newco')).submit('x', T.make_report, user_id='u1')   # explicit: created
    assert host.tenants() == ['acme', 'newco']
    assert BackgroundTaskManager(host.url('newco')).count_jobs() == 1

def test_5_c_a_bare_word_is_refused_a_path_is_created_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError): BackgroundTaskManager('acme')
    assert list(tmp_path.iterdir()) == [], "a bare word created a file in the working directory"
    missing = tmp_path/'missing.db'
    with pytest.raises((LookupError, FileNotFoundError)): BackgroundTaskManager(missing)
    assert not missing.exists()
    made = tmp_path/'made.db'
    m = BackgroundTaskManager(made, create=True, run_here=False)
    m.submit('x', T.make_report, user_id='u1')
    assert made.exists() and m.count_jobs() == 1

# ---------------------------------------------------------------- 6. validated and capped
def test_6_a_non_finite_or_huge_times_are_refused(host):
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    wrong = []
    for name in ('delay', 'run_at', 'timeout'):
        for v in (INF, NAN, 1e300):
            try: m.enqueue('x', T.make_report, {'user_id': 'u1'}, **{name: v}); wrong.append(f"{name}={v}: accepted")
            except ValueError: pass
            except Exception as e: wrong.append(f"{name}={v}: {type(e).__name__}")
    assert not wrong, wrong
    assert m.count_jobs() == 0

def test_6_b_retry_after_inf_or_nan_fails_the_job(host):
    "In the response-time runner and in a scheduler: the job ends failed, nothing sleeps forever or stays running."
    m = BackgroundTaskManager(host.create('acme'))
    for s in ('inf', 'nan'):
        i, bg = m.submit('sec_retry_after', T.retry_after, seconds=s)
        async def go():
            with anyio.fail_after(20): await bg()
        anyio.run(go)
        j = m.get_job(i)
        assert j.status == 'failed', (s, j.status, j.run_at)
    q = BackgroundTaskManager(host.url('acme'), run_here=False)
    ids = [q.submit('sec_retry_after', T.retry_after, seconds=s)[0] for s in ('inf', 'nan')]
    async def serve():
        with anyio.fail_after(20):
            async with Scheduler(host, poll=0.1).running():
                while not all(q.get_job(i).finished for i in ids): await anyio.sleep(0.05)
    anyio.run(serve)
    assert [q.get_job(i).status for i in ids] == ['failed', 'failed']

NOTE = re.compile(r'cut|truncat|omit|left out|dropped|elided|more char|more byte|too (big|large|long)|over the', re.I)

def test_6_c_huge_error_messages_and_results_are_stored_capped_with_a_note(host):
    m = BackgroundTaskManager(host.create('acme'))
    i, bg = m.submit('sec_huge_error', T.huge_error, max_retries=0); anyio.run(bg)
    raw = m.store.get(i)
    assert raw['status'] == 'failed'
    e = json.loads(raw['error_log'])[-1]
    assert len(e['error']) <= 8192 and len(e.get('traceback') or '') <= 16384, (len(e['error']), len(e.get('traceback') or ''))
    assert len(raw['error_log']) <= 64 * 1024, len(raw['error_log'])
    said = re.sub('x{20,}', '', json.dumps(e))
    assert NOTE.search(said) is not None, f"no note that the message was cut: {said[:300]}"
    i, bg = m.submit('sec_huge_result', T.huge_result); anyio.run(bg)
    raw = m.store.get(i)
    assert raw['status'] in FINISHED, raw['status']
    stored = raw['result'] or ''
    assert len(stored) < 2_000_000, f"the 2 MB result was stored whole ({len(stored):,} characters)"
    said = re.sub('y{20,}', '', stored + ' ' + (raw['error_log'] or '') + ' ' + (raw['progress_msg'] or ''))
    assert NOTE.search(said) is not None, f"no note that the result was cut: {said[:300]}"

def test_6_d_fifty_failures_keep_a_bounded_error_log(host):
    clk = Clock()
    m = BackgroundTaskManager(host.create('acme'), clock=clk, sleep=clk.sleep,
                              policy=lambda n, e, max_retries=3: 0.0 if n <= max_retries else None)
    i, bg = m.submit('sec_always_fails', T.always_fails, max_retries=49)
    async def go():
        with anyio.fail_after(60): await bg()
    anyio.run(go)
    j = m.get_job(i)
    assert (j.status, j.attempt) == ('failed', 50), (j.status, j.attempt)
    errs = j.error_log
    assert len(errs) <= 12, f"{len(errs)} entries kept for 50 attempts"
    kept = {e.get('attempt') for e in errs if isinstance(e, dict) and isinstance(e.get('attempt'), int)}
    assert 1 in kept and 50 in kept, sorted(kept)
    omitted = 50 - len(kept)
    notes = ' '.join(json.dumps({k: v for k, v in e.items() if k not in ('at', 'attempt', 'traceback')})
                     if isinstance(e, dict) else json.dumps(e) for e in errs)
    assert re.search(rf'\b{omitted}\b', notes), f"no note says {omitted} attempts were left out: {notes[:500]}"

# ---------------------------------------------------------------- 7. defensive rendering
SCRIPT = '<script>alert("pwned")</script>'

def hostile_rows(sqlite: bool) -> dict:
    "Stored values a task, a client or a bad write can leave in a row (SQLite stores a bound NaN as NULL: text there)."
    nan = 'NaN' if sqlite else NAN
    return {
        'NaN progress': dict(status='running', attempt=1, progress=nan),
        'infinite progress': dict(status='running', attempt=1, progress=INF),
        'progress 1e300': dict(status='completed', attempt=1, progress=1e300, result='1'),
        '<script> in progress_msg': dict(status='running', attempt=1, progress=0.5, progress_msg=SCRIPT),
        'run_at 1e300': dict(status='pending', run_at=1e300, retry_count=1),
        'infinite run_at': dict(status='pending', run_at=INF, retry_count=1),
        'NaN run_at': dict(status='pending', run_at=nan, retry_count=1),
        'corrupt payload': dict(payload='{not json'),
        'corrupt result': dict(status='completed', attempt=1, result='{not json'),
        'corrupt error_log': dict(status='failed', attempt=1, error_log='{not json'),
        'odd error_log entries': dict(status='failed', attempt=1,
                                      error_log='[1, "x", null, {"error": {"a": 1}, "attempt": "?", "at": 5, "traceback": 7}]'),
        'lone surrogates in stored JSON': dict(status='failed', attempt=1, payload='{"a": "\\udc80"}', result='"\\ud800"',
                                               error_log='[{"attempt": 1, "at": null, "error": "\\udc80", "traceback": "\\ud800"}]'),
        'bad timestamps': dict(status='failed', attempt=1, created_at='yesterday', started_at='yesterday',
                               completed_at='soon'),
    }

def test_7_a_every_hostile_stored_value_renders_with_status_200(host):
    m = BackgroundTaskManager(host.create('acme'))
    s, bg = m.submit('sec_surrogate', T.surrogate_error, max_retries=0); anyio.run(bg)   # raised by a task
    rows = {'lone surrogate raised by a task': s}
    rows.update({what: raw_insert(host, 'acme', **cols) for what, cols in hostile_rows(is_sqlite(host)).items()})
    broken = []
    with client(app_for(lambda req: 'acme', host=host)) as cli:
        for what, i in rows.items():
            for part in ('', '/card', '/status'):
                r = cli.get(f'/jobs/{i}{part}')
                if r.status_code != 200: broken.append(f"{what}: /jobs/{{id}}{part} -> {r.status_code}")
                elif SCRIPT in r.text: broken.append(f"{what}: /jobs/{{id}}{part} has the <script> unescaped")
        for p in ('/jobs', '/jobs/table', '/jobs?status=failed', '/jobs?status=pending', '/jobs?status=running'):
            r = cli.get(p)
            if r.status_code != 200: broken.append(f"list {p} -> {r.status_code}")
            elif SCRIPT in r.text: broken.append(f"list {p} has the <script> unescaped")
        r = cli.get(f"/jobs/{rows['<script> in progress_msg']}")
    assert not broken, 'pages broken by stored values:\n' + '\n'.join(broken)
    assert '&lt;script&gt;' in r.text

@pytest.mark.parametrize('folder', ['a?b', 'c#d', 'e%3Ff'])
def test_7_b_odd_sqlite_folder_names_keep_tenants_in_their_own_files(tmp_path, folder):
    host = SqliteHost(tmp_path/folder)
    ms = {t: BackgroundTaskManager(host.create(t), run_here=False) for t in ('t1', 't2')}
    ids = {t: m.submit('x', T.make_report, user_id=t)[0] for t, m in ms.items()}
    for t, m in ms.items(): assert [j.id for j in m.list_jobs()] == [ids[t]], (folder, t)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder], f"files outside the folder: {sorted(tmp_path.iterdir())}"
    for t, i in ids.items():
        with closing(sqlite3.connect(host.path(t))) as c:
            assert [r[0] for r in c.execute("SELECT id FROM tenant_jobs")] == [i], (folder, t)

def test_7_c_tracebacks_are_hidden_from_dashboard_users_by_default(host):
    m = BackgroundTaskManager(host.create('acme'))
    i, bg = m.submit('sec_secret', T.secret_error, max_retries=0); anyio.run(bg)
    assert TRACEBACK in m.get_job(i).error_log[-1].get('traceback', ''), "the traceback is still stored for the app"
    def pages(**kw):
        with client(app_for(lambda req: 'acme', host=host, **kw)) as cli:
            return [cli.get(f'/jobs/{i}'), cli.get(f'/jobs/{i}/card'), cli.get('/jobs')]
    for r in pages():
        assert r.status_code == 200
        assert TRACEBACK not in r.text, "a traceback is shown to dashboard users by default"
    assert all('sekrit-message-123' in r.text for r in pages()[:2]), "the error message is no longer shown"
    shown = pages(tracebacks=True)
    assert all(r.status_code == 200 for r in shown) and TRACEBACK in shown[0].text

# ---------------------------------------------------------------- 8. same bad input, same error, both backends
def test_8_same_bad_input_same_value_error_on_both_backends(tmp_path, pg_server):
    from fh_saas.pg import PgHost
    hosts = {'sqlite': SqliteHost(tmp_path/'tenants'), 'postgresql': PgHost(db_url(pg_server, new_db(pg_server)))}
    deep = None
    for _ in range(5000): deep = [deep]
    cases = {'NUL in job_type': (lambda m: m.submit('a\x00b', T.nest), 'job_type'),
             'NUL in key': (lambda m: m.enqueue('x', T.nest, {}, key='k\x00'), 'key'),
             'lone surrogate in job_type': (lambda m: m.submit('a\udc80b', T.nest), 'job_type'),
             'newline in job_type': (lambda m: m.submit('a\nb', T.nest), 'job_type'),
             'lone surrogate in key': (lambda m: m.enqueue('x', T.nest, {}, key='k\udc80'), 'key'),
             '5,000-deep payload': (lambda m: m.submit('x', T.nest, x=deep), None)}
    got, problems = {}, []
    for b, h in hosts.items():
        m = BackgroundTaskManager(h.create('acme'), run_here=False)
        for what, (call, word) in cases.items():
            n = m.count_jobs()
            try: call(m); got[what, b] = None
            except BaseException as e: got[what, b] = e
            if m.count_jobs() != n: problems.append(f"{what} on {b}: a row was written")
    for what, (_, word) in cases.items():
        es = {b: got[what, b] for b in hosts}
        desc = {b: 'accepted' if e is None else f"{type(e).__name__}: {str(e)[:120]}" for b, e in es.items()}
        if not all(isinstance(e, ValueError) and not isinstance(e, RecursionError) for e in es.values()):
            problems.append(f"{what}: not a ValueError on both: {desc}")
        elif len({type(e) for e in es.values()}) != 1: problems.append(f"{what}: different errors: {desc}")
        elif word and not all(word in str(e) for e in es.values()): problems.append(f"{what}: does not name {word}: {desc}")
    assert not problems, '\n'.join(problems)
