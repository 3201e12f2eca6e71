"""`fh_sqlite_sync.py` on uvloop, the event loop a FastHTML app runs on when it is served (see
`fh_sqlite_sched_uvloop.py`): Starlette awaits the `bg_task` on that loop. Same store, same sync task in a job thread."""
from systems.fh_sqlite_sync import System  # noqa: F401 -- the system itself; only the loop differs

LABEL = 'fh-saas SQLite, sync task, `bg_task` path, on uvloop'
BACKEND, PROCESS, LOOP = 'sqlite', False, 'uvloop'
