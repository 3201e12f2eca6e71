"fh-saas on one tenant SQLite file, `bg_task` path, with an async task: it runs on the event loop, no thread."
from systems.fh_sqlite_sync import System as SyncSystem

LABEL = 'fh-saas SQLite, async task, `bg_task` path'
BACKEND, PROCESS = 'sqlite', False


async def anoop(): return None


class System(SyncSystem):
    task = staticmethod(anoop)
