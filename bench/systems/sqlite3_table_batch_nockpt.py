"""`sqlite3_table_batch.py` with no checkpoint at all: the log only grows while the run lasts (SQLite's `wal_autocheckpoint`
off). What the path's statements cost when copying the log into the database costs this thread nothing, as when a
runner checkpoints from a thread of its own on another core (fh-saas does): the lowest a runner keeping fh-saas's
rows could spend on this path, where `sqlite3_table_batch.py` pays SQLite's own checkpoints in the committing thread."""
from systems import sqlite3_table_batch

LABEL = sqlite3_table_batch.LABEL + ', no checkpoints'
BACKEND, PROCESS = 'sqlite', False


class System(sqlite3_table_batch.System):
    checkpoints = False
