"""The job metrics (`fh_saas.metrics.mount_metrics`) of the tenants under $DATA_DIR, and routes that run jobs here.

- `GET /metrics`: behind a bearer token ($TOKEN); `GET /metrics-local`: the default gate (this machine only).
  Both read afresh at every scrape ($METRICS_CACHE seconds of cache, default 0) and wait up to 30 s for a reading.
- `GET /login/{tenant}`: a tenant user's session.
- `POST /run/{kind}`: submit one job of the session's tenant (`add` completes, `boom` fails at once, no retry); it
  runs after the response, in this process.
"""
import os
from fasthtml.common import fast_app
from starlette.responses import JSONResponse, Response
from fh_saas.db_host import SqliteHost
from fh_saas.utils_bgtsk import BackgroundTaskManager
from fh_saas.metrics import mount_metrics


def add(a: int, b: int): return a + b

def boom(): raise ValueError('boom')


def create_app():
    host, token = SqliteHost(os.environ['DATA_DIR']), os.environ['TOKEN']
    cache = float(os.environ.get('METRICS_CACHE', '0'))
    app, rt = fast_app(secret_key='metrics-app-test-only')
    mount_metrics(app, host, allow=lambda req: req.headers.get('authorization') == f"Bearer {token}", cache=cache, timeout=30)
    mount_metrics(app, host, path='/metrics-local', cache=cache, timeout=30)

    @rt('/login/{tenant}')
    def get(tenant: str, sess):
        sess['tenant'] = tenant
        return f"signed in to {tenant}"

    @rt('/run/{kind}')
    def post(kind: str, sess):
        tenant = sess.get('tenant')
        if not tenant or kind not in ('add', 'boom'): return Response('no', status_code=403)
        mgr = BackgroundTaskManager(host.url(tenant))
        job_id, bg = (mgr.submit('add', add, max_retries=0, a=1, b=2) if kind == 'add' else
                      mgr.submit('boom', boom, max_retries=0))
        return JSONResponse({'id': job_id}, background=bg)
    return app
