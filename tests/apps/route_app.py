"A FastHTML app for tests: routes that submit jobs the ways users do. Tenant files under $DATA_DIR."
import os, time, json
from pathlib import Path
from fasthtml.common import *
from starlette.responses import JSONResponse
from fh_saas.db_host import SqliteHost
from fh_saas.utils_bgtsk import BackgroundTaskManager, with_task

def slow(seconds: float = 1.0):
    time.sleep(seconds)
    return {'slept': seconds}

def fail_first(marker: str):
    "Fails on its first attempt (a marker file remembers), succeeds after."
    p = Path(marker)
    if not p.exists(): p.write_text('1'); raise ConnectionError('first attempt fails')
    return 'second time lucky'

def noop(i: int = 0): return i

def create_app():
    host = SqliteHost(os.environ['DATA_DIR'])
    shared = BackgroundTaskManager(host.create('shared'))   # one manager used by every request and thread
    app, rt = fast_app()

    @app.post('/sync/{tenant}')
    def sync(tenant: str, seconds: float = 1.0):
        mgr = BackgroundTaskManager(host.db(tenant))
        job_id, bg_task = mgr.submit('sync_data', slow, seconds=seconds)
        return Div(f"Syncing... {job_id}", id='msg'), bg_task

    @app.post('/flaky/{tenant}')
    def flaky(tenant: str, marker: str):
        mgr = BackgroundTaskManager(host.create(tenant))
        job_id, bg_task = mgr.submit('flaky', fail_first, max_retries=2, marker=marker)
        return Div(job_id), bg_task

    @app.post('/redirect/{tenant}')
    def redirect(tenant: str):
        job_id, bg_task = BackgroundTaskManager(host.create(tenant)).submit('noop', noop, i=7)
        return with_task(Redirect(f'/job/{tenant}/{job_id}'), bg_task)

    @app.post('/json/{tenant}')
    def as_json(tenant: str):
        job_id, bg_task = BackgroundTaskManager(host.create(tenant)).submit('noop', noop, i=8)
        return with_task(JSONResponse({'job_id': job_id}), bg_task)

    @app.post('/shared')
    def shared_submit(i: int):
        job_id, bg_task = shared.submit('noop', noop, i=i)
        return job_id, bg_task

    @app.get('/job/{tenant}/{job_id}')
    def job(tenant: str, job_id: str):
        j = BackgroundTaskManager(host.url(tenant)).get_job(job_id)
        return JSONResponse(dict(status=j.status, result=j.result, retry_count=j.retry_count, error_log=j.error_log,
                                 started_at=j.started_at, attempt=j.attempt))
    return app
