"""`fh_sqlite_sched.py` on uvloop, the event loop a FastHTML app runs on when it is served: python-fasthtml requires
`uvicorn[standard]`, which installs uvloop, and uvicorn's default `loop='auto'` picks it (`fast_app` + `serve()`,
`uvicorn app:app`, and the demo all do). Same scheduler, same defaults, same async task."""
from systems.fh_sqlite_sched import System  # noqa: F401 -- the system itself; only the loop differs

LABEL = 'fh-saas SQLite, async task, in-app scheduler, on uvloop'
BACKEND, PROCESS, LOOP = 'sqlite', False, 'uvloop'
