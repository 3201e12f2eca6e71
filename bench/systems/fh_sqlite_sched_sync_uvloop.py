"""`fh_sqlite_sched_sync.py` on uvloop, the event loop a FastHTML app runs on when it is served (see
`fh_sqlite_sched_uvloop.py`). Same scheduler, same defaults, same sync task in its job threads."""
from systems.fh_sqlite_sched_sync import System  # noqa: F401 -- the system itself; only the loop differs

LABEL = 'fh-saas SQLite, sync task, in-app scheduler, on uvloop'
BACKEND, PROCESS, LOOP = 'sqlite', False, 'uvloop'
