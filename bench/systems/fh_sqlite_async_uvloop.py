"""`fh_sqlite_async.py` on uvloop, the event loop a FastHTML app runs on when it is served (see
`fh_sqlite_sched_uvloop.py`): Starlette awaits the `bg_task` on that loop. Same store, same async task."""
from systems.fh_sqlite_async import System  # noqa: F401 -- the system itself; only the loop differs

LABEL = 'fh-saas SQLite, async task, `bg_task` path, on uvloop'
BACKEND, PROCESS, LOOP = 'sqlite', False, 'uvloop'
