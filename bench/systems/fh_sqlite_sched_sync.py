"""`fh_sqlite_sched.py` with a sync task: fh-saas's in-app `Scheduler`, its defaults, on one tenant SQLite file. The
scheduler claims the due jobs and hands each to one of its job threads (8 by default), several at once."""
from systems import fh_sqlite_sched

LABEL = 'fh-saas SQLite, sync task, in-app scheduler'
BACKEND, PROCESS = 'sqlite', False


def noop(): return None


class System(fh_sqlite_sched.System):
    task = staticmethod(noop)
