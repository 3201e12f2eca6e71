"An app with the in-process scheduler, for crash tests. Tenants under $DATA_DIR; executions logged to $EXEC_LOG."
import os, time
from pathlib import Path
from fasthtml.common import *
from starlette.responses import JSONResponse
from fh_saas.db_host import SqliteHost
from fh_saas.scheduler import Scheduler
from fh_saas.utils_bgtsk import BackgroundTaskManager, current_job

def work(ms: int = 20):
    "Logs each execution (its own line: see `conftest.exec_runs`), then works for `ms` milliseconds."
    with open(os.environ['EXEC_LOG'], 'a') as f: f.write('\n' + current_job().id + '\n')
    time.sleep(ms / 1000)
    return ms

def fail_first(marker: str):
    p = Path(marker)
    if not p.exists(): p.write_text('1'); raise ConnectionError('first attempt fails')
    return 'retried after restart'

def create_app():
    host = SqliteHost(os.environ['DATA_DIR'])
    for t in ('acme', 'globex'): host.create(t)
    sched = Scheduler(host, concurrency=8, lease=float(os.environ.get('LEASE', '30')), poll=0.5, task_modules=[__name__])
    app, rt = fast_app(lifespan=sched.lifespan)

    @app.post('/enqueue/{tenant}')
    def enqueue(tenant: str, n: int, ms: int = 20):
        mgr = BackgroundTaskManager(host.url(tenant))
        return JSONResponse([mgr.submit('work', work, ms=ms)[0] for _ in range(n)])

    @app.post('/flaky/{tenant}')
    def flaky(tenant: str, marker: str):
        job_id, bg = BackgroundTaskManager(host.url(tenant)).submit('flaky', fail_first, max_retries=2, marker=marker)
        return job_id, bg
    return app
