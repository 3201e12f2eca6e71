"""`sqlite3_table_batch.py` with its log kept bounded from a thread of its own, as fh-saas keeps a store's
(`sqlite3_table.Kept`): past `WAL_LIMIT` a thread copies the log into the database in passive passes while the loop
writes on, then restarts it in a short pause of the loop's writes. What the path's statements cost with a bounded log
whose copying this thread does not do itself: the lowest a runner keeping fh-saas's rows and a bounded log could
spend on this path, where `sqlite3_table_batch_nockpt.py`'s log only grows."""
from systems import sqlite3_table_batch

LABEL = sqlite3_table_batch.LABEL + ', log kept from a thread'
BACKEND, PROCESS = 'sqlite', False


class System(sqlite3_table_batch.System):
    checkpoints = 'thread'
