"`fh-saas-jobs`, the operator's command, run as a real process on SQLite files and on PostgreSQL."
import os, sys, json, subprocess
import anyio, pytest
from fh_saas.db_host import SqliteHost
from fh_saas.utils_bgtsk import BackgroundTaskManager, NoRetry
from fh_saas.store import store_for
from conftest import ROOT

SECRET = 'hunter2-Sekr1t'

def ok(n): return n * 2
def boom(n, dsn=None): raise NoRetry(f"{n} failed \x1b[31m!\x1b[0m {dsn}")

def fill(host):
    "Two tenants, each: one completed, one failed, one pending job. Returns {tenant: {kind: job_id}}."
    ids = {}
    async def go():
        for t in ('acme', 'beta'):
            m = BackgroundTaskManager(host.create(t))
            ids[t] = {}
            i, bg = m.submit('ok', ok, n=1); await bg(); ids[t]['completed'] = i
            i, bg = m.submit('boom', boom, n=2, dsn=f'postgresql://app:{SECRET}@db/x'); await bg(); ids[t]['failed'] = i
            i, bg = BackgroundTaskManager(host.url(t), run_here=False).submit('ok', ok, n=3); await bg()
            ids[t]['pending'] = i
    anyio.run(go)
    return ids

def where(host) -> list:
    if isinstance(host, SqliteHost): return ['--sqlite-dir', str(host.data_dir)]
    return ['--url', host.conninfo]

def cli(host, *args, where_args=None):
    "Run `python -m fh_saas.ops ARGS` against `host`; the CompletedProcess."
    env = {k: v for k, v in os.environ.items() if k != 'FH_SAAS_PG_URL'}
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    cmd = [sys.executable, '-m', 'fh_saas.ops', *args, *(where(host) if where_args is None else where_args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)

def jsn(host, *args):
    p = cli(host, *args, '--json')
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)

def status(host, tenant, job_id): return BackgroundTaskManager(host.url(tenant)).get_job(job_id).status

def snapshot(host) -> dict:
    "Every tenant's rows, as a reader sees them."
    return {t: sorted(map(str, store_for(host.url(t)).query(limit=1000))) for t in host.tenants()}

def test_list_show_and_stats(host):
    ids = fill(host)
    p = cli(host, 'list')
    assert p.returncode == 0 and p.stdout.splitlines()[0].split()[:4] == ['TENANT', 'JOB', 'ID', 'TYPE']
    assert all(i in p.stdout for t in ids.values() for i in t.values())
    every = jsn(host, 'list')
    assert len(every) == 6 and {(j['tenant'], j['status']) for j in every} == {
        (t, s) for t in ids for s in ('completed', 'failed', 'pending')}
    assert [j['created_at'] for j in every] == sorted((j['created_at'] for j in every), reverse=True)
    got = jsn(host, 'list', '--tenant', 'beta', '--status', 'failed')
    assert [(j['tenant'], j['id']) for j in got] == [('beta', ids['beta']['failed'])]
    assert {j['id'] for j in jsn(host, 'list', '--job-type', 'ok', '--limit', '3')} <= {
        ids[t][k] for t in ids for k in ('completed', 'pending')}
    assert len(jsn(host, 'list', '--job-type', 'ok', '--limit', '3')) == 3

    fid = ids['acme']['failed']
    p = cli(host, 'show', fid)   # no --tenant: it finds the tenant
    assert p.returncode == 0 and 'tenant     acme' in p.stdout and 'NoRetry: 2 failed ?[31m!?[0m' in p.stdout
    assert '\x1b' not in p.stdout and 'NoRetry' in p.stdout   # a stored escape sequence never reaches the terminal
    assert 'failed ?[31m!?[0m postgresql://app:***@db/x' in cli(host, 'list', '--status', 'failed').stdout   # masked in any text
    j = jsn(host, 'show', fid, '--tenant', 'acme')
    assert (j['tenant'], j['id'], j['status'], j['payload']['n']) == ('acme', fid, 'failed', 2)
    assert '\x1b[31m' in j['error_log'][-1]['error']   # JSON keeps the value whole (escaped)

    anyio.run(BackgroundTaskManager(host.url('beta')).submit('ok', ok, n=5)[1])   # beta: one more completed job
    st = {s['tenant']: s for s in jsn(host, 'stats')}
    assert set(st) == {'acme', 'beta'}
    for t, done in (('acme', 1), ('beta', 2)):
        s = st[t]
        assert s['counts'] == dict(pending=1, running=0, completed=done, failed=1, cancelled=0) and s['total'] == 2 + done
        assert (s['failed_recent'], s['completed_recent'], s['failure_rate'], s['error']) == (1, done, 1 / (1 + done), None)
        assert s['oldest_due'] is not None and s['queue_age'] >= 0
    p = cli(host, 'stats')
    assert p.returncode == 0 and 'FAILED 1H' in p.stdout and '2 tenant(s), 2 pending' in p.stdout
    cols = [l.split() for l in p.stdout.splitlines()[1:3]]   # column 6: how long the pending job has waited
    assert [c[:6] + c[7:10] for c in cols] == [['acme', '1', '0', '1', '1', '0', '1', '1', '50%'],
                                               ['beta', '1', '0', '2', '1', '0', '2', '1', '33%']]
    assert [s['tenant'] for s in jsn(host, 'stats', '--tenant', 'beta')] == ['beta']

def test_retry_cancel_prune_act_through_the_guards(host):
    ids = fill(host)
    fid, pid, cid = ids['beta']['failed'], ids['beta']['pending'], ids['beta']['completed']
    p = cli(host, 'retry', fid)
    assert p.returncode == 0 and 'failed -> pending' in p.stdout and status(host, 'beta', fid) == 'pending'
    p = cli(host, 'retry', cid, '--tenant', 'beta')   # only a failed or cancelled job can be retried
    assert (p.returncode, p.stdout) == (1, '') and 'only a failed or cancelled job' in p.stderr
    assert status(host, 'beta', cid) == 'completed'
    assert jsn(host, 'cancel', pid) == dict(tenant='beta', id=pid, status='cancelled', cancel_requested=True)
    assert status(host, 'beta', pid) == 'cancelled'
    p = cli(host, 'cancel', cid)
    assert p.returncode == 1 and 'already completed' in p.stderr and status(host, 'beta', cid) == 'completed'
    assert jsn(host, 'retry', pid, '--tenant', 'beta')['status'] == 'pending'   # a cancelled job may run again

    assert jsn(host, 'prune', '--older-than', '1h')['total'] == 0      # everything ended just now
    got = jsn(host, 'prune', '--older-than', '0', '--tenant', 'acme')  # finished jobs of acme only
    assert (got['total'], got['deleted'], got['errors']) == (2, {'acme': 2}, {})
    assert {j['status'] for j in jsn(host, 'list', '--tenant', 'acme')} == {'pending'}
    assert len(jsn(host, 'list', '--tenant', 'beta')) == 3
    p = cli(host, 'prune', '--older-than', '0s')
    assert p.returncode == 0 and 'deleted 1 finished job(s)' in p.stdout  # beta's completed job; pending ones stay
    assert len(jsn(host, 'list')) == 3

def test_bad_input_is_refused_and_writes_nothing(host):
    ids = fill(host)
    before = snapshot(host)
    fid = ids['acme']['failed']
    cases = [(['list', '--tenant', 'Acme/../x'], 2, "bad tenant id 'Acme/../x'"),
             (['list', '--status', 'done'], 2, "status must be one of pending, running"),
             (['show', 'f' * 32], 1, "no job 'ffffffffffffffffffffffffffffffff' in any tenant"),
             (['cancel', fid, '--tenant', 'ghost'], 1, "no tenant 'ghost'")]
    if isinstance(host, SqliteHost): cases += [   # usage is checked before any database is opened: same on both backends
             (['retry', fid, '--tenant', '../beta'], 2, 'bad tenant id'),
             (['cancel', fid, '--status', 'failed'], 2, 'cancel does not take --status'),
             (['retry'], 2, 'retry needs a JOB_ID'),
             (['retry', "x' OR 1=1 --"], 2, 'bad job id'),
             (['prune'], 2, 'prune needs --older-than'),
             (['prune', '--older-than=-5d'], 2, 'bad age'),
             (['list', '--limit', '0'], 2, 'limit must be'),
             (['explode'], 2, 'invalid choice'),
             (['retry', 'f' * 32, '--tenant', 'acme'], 1, "no job 'ffffffffffffffffffffffffffffffff' in tenant 'acme'"),
             (['list', '--tenant', 'ghost'], 1, "no tenant 'ghost'"),
             (['stats', '--tenant', 'ghost'], 1, "no tenant 'ghost'"),
             (['prune', '--older-than', '0', '--tenant', 'ghost'], 1, "no tenant 'ghost'")]
    for args, code, says in cases:
        p = cli(host, *args)
        assert (p.returncode, p.stdout) == (code, ''), (args, p.returncode, p.stdout, p.stderr)
        assert says in p.stderr, (args, p.stderr)
        if 'choice' not in says: assert len(p.stderr.strip().splitlines()) == 1, (args, p.stderr)   # argparse adds usage
        assert 'Traceback' not in p.stderr, (args, p.stderr)
    assert snapshot(host) == before and not host.exists('ghost') and host.tenants() == ['acme', 'beta']

def test_where_the_tenants_are_must_be_given(tmp_path):
    h = SqliteHost(tmp_path/'t')
    p = cli(h, 'stats', where_args=[])
    assert (p.returncode, p.stdout) == (2, '') and 'pass --sqlite-dir DIR or --url' in p.stderr
    p = cli(h, 'stats', where_args=['--sqlite-dir', str(tmp_path/'typo')])
    assert p.returncode == 2 and 'no folder' in p.stderr and not (tmp_path/'typo').exists()

def test_an_unreadable_tenant_is_reported_not_fatal(tmp_path):
    h = SqliteHost(tmp_path/'t')
    ids = fill(h)
    (h.data_dir/'zbroken.db').write_bytes(b'this is not a database' * 100)
    st = {s['tenant']: s for s in jsn(h, 'stats')}
    assert st['zbroken']['error'] == 'DatabaseError: file is not a database' and st['acme']['total'] == 3
    assert len(jsn(h, 'list')) == 6
    assert jsn(h, 'show', ids['beta']['failed'])['tenant'] == 'beta'

def test_secrets_never_printed(pg_server):
    "A password in the server URL (and one in a job's payload) appears in no output: text, JSON, errors."
    from fh_saas.pg import PgHost
    pg_server.psql("DROP DATABASE IF EXISTS ops_secret"); pg_server.psql("CREATE DATABASE ops_secret OWNER fh")
    url = pg_server.url.rsplit('/', 1)[0].replace('//fh@', f'//fh:{SECRET}@') + '/ops_secret'
    host = PgHost(url)   # trust auth: the password is sent and ignored, so it reaches every code path
    ids = fill(host)
    fid = ids['acme']['failed']
    outs = [cli(host, *a, where_args=['--url', url]) for a in (
        ['list'], ['list', '--json'], ['show', fid], ['show', fid, '--json'], ['stats'], ['stats', '--json'],
        ['list', '--tenant', 'ghost'], ['show', 'f' * 32], ['retry', fid, '--json'])]
    outs.append(cli(host, 'stats', where_args=['--url', url.replace('postgresql://', 'mysql://')]))
    for p in outs: assert SECRET not in p.stdout + p.stderr, p.args
    assert [p.returncode for p in outs] == [0, 0, 0, 0, 0, 0, 1, 1, 0, 2]
    assert "fh:***@" in outs[6].stderr and 'postgresql://app:***@db/x' in outs[2].stdout
    assert json.loads(outs[3].stdout)['payload']['dsn'] == 'postgresql://app:***@db/x'
