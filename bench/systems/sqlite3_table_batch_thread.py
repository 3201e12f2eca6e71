"""The floor under the in-app scheduler's drain of sync tasks on SQLite: `sqlite3_table_batch.py`, with each claimed
no-op handed to a thread of a pool of 8 and back (`sqlite3_table_thread.py`'s hand-off), the batch's tasks at once, as
any runner must do with sync functions it may not run on the event loop."""
import asyncio
from systems import sqlite3_table, sqlite3_table_batch, sqlite3_table_thread

LABEL = "bare sqlite3 loop on fh-saas's table, grouped claims and finishes, tasks in threads"
BACKEND, PROCESS = 'sqlite', False


class System(sqlite3_table_batch.System, sqlite3_table_thread.System):
    threads = 8  # as many as the scheduler's job threads

    async def run_tasks(self, n):  # the executor's futures themselves: no task wrapped around each
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, sqlite3_table.noop) for _ in range(n)))
