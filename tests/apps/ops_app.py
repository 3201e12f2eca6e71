"""The app of tests/test_ops_ui_browser.py: a tenant dashboard (`mount_jobs`, /jobs) and the operator view
(`mount_ops`, /ops) behind one session login, over the tenant SQLite files in $DATA_DIR.

`/login?user=NAME` signs in. alice works at tenant acme and bob at globex: tenant users, who see their own jobs
at /jobs. olga runs the app: `allow` lets her (and only her) into /ops. The app runs no Scheduler: a job runs
only when a route runs it (a retry does), so pending jobs stay pending and their queue age grows.
"""
import os
from fasthtml.common import *
from fh_saas.db_host import SqliteHost
from fh_saas.ui import mount_jobs
from fh_saas.ops_ui import mount_ops
from fh_saas.schedules import Schedule
from fh_saas.utils_bgtsk import task, current_job

USERS = {'alice': 'acme', 'bob': 'globex', 'olga': None}
OPERATORS = {'olga'}

@task
def flaky(fail_until:int=1):
    "Fails its first `fail_until` attempts, then completes."
    attempt = current_job().attempt
    if attempt <= fail_until: raise ConnectionError(f"attempt {attempt}: the bank API dropped the connection")
    return {'attempt': attempt}

@task
def noop():
    "Does nothing."
    return 'ok'

def schedules() -> list:
    "The app's schedules: a nightly sync for every tenant, a report every 15 minutes for acme and globex."
    return [Schedule('nightly-sync', noop, cron='0 2 * * *', tz='Europe/Paris'),
            Schedule('reports', noop, every=900, tenants=['acme', 'globex'])]

def is_operator(req): return req.scope.get('user') in OPERATORS

def make_app(data_dir:str):
    "The app over the tenant databases in `data_dir`."
    host = SqliteHost(data_dir)

    def auth(req, sess):
        user = sess.get('user')
        if user not in USERS: return RedirectResponse('/login', status_code=303)
        req.scope['user'], req.scope['tenant'] = user, USERS[user]

    app, rt = fast_app(before=Beforeware(auth, skip=['/login']), secret_key='ops-app-test')

    @app.get('/login')
    def login(sess, user:str=''):
        if user not in USERS: return P('Sign in with ?user=alice, bob or olga.')
        sess['user'] = user
        return Redirect('/ops' if user in OPERATORS else '/jobs')

    mount_jobs(app, tenant_of=lambda req: req.scope['tenant'], host=host)
    mount_ops(app, host, allow=is_operator, schedules=schedules(), page_size=50, every=1.0)
    return app

def create_app(): return make_app(os.environ['DATA_DIR'])
