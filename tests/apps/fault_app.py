"""An app with the in-process scheduler for the fault tests (tests/test_faults.py).

Tenants: SQLite files under $FAULT_SQLITE_DIR, or schemas on $FAULT_PG_URL. Scheduler settings from $CONCURRENCY,
$LEASE, $POLL. `/threads` shows the process's thread count and how many of anyio's default thread tokens are lent."""
import os, threading
import anyio
from fasthtml.common import *
from starlette.responses import JSONResponse
from fh_saas.scheduler import Scheduler
import apps.fault_tasks  # noqa: F401 -- the tasks this app declares

def make_host():
    if os.environ.get('FAULT_PG_URL'):
        from fh_saas.pg import PgHost
        return PgHost(os.environ['FAULT_PG_URL'])
    from fh_saas.db_host import SqliteHost
    return SqliteHost(os.environ['FAULT_SQLITE_DIR'])

def create_app():
    host = make_host()
    host.create('acme')
    sched = Scheduler(host, concurrency=int(os.environ.get('CONCURRENCY', '8')),
                      lease=float(os.environ.get('LEASE', '30')), poll=float(os.environ.get('POLL', '0.5')))
    app, rt = fast_app(lifespan=sched.lifespan)

    @app.get('/health')
    def health(): return 'ok'

    @app.get('/threads')
    async def threads():
        lim = anyio.to_thread.current_default_thread_limiter()
        return JSONResponse(dict(active=threading.active_count(), borrowed=lim.borrowed_tokens,
                                 names=sorted(t.name for t in threading.enumerate())))
    return app
