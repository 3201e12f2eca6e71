"Huey as shipped: as `huey_sqlite.py`, with SqliteHuey's own storage, which leaves SQLite at synchronous FULL."
from huey.storage import SqliteStorage
from systems.huey_sqlite import System as NormalSystem

LABEL = 'Huey, SqliteHuey, in-process consumer, as shipped (WAL + FULL)'
BACKEND, PROCESS = 'sqlite', False


class System(NormalSystem):
    storage = SqliteStorage
