"""The floor under the in-app scheduler's drain of sync tasks on SQLite: `sqlite3_table_batch.py`, with each claimed
no-op handed to a thread of a pool of 8 and back (`loop.run_in_executor`), the batch's tasks at once, as any runner
must do with sync functions it may not run on the event loop."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from systems import sqlite3_table, sqlite3_table_batch

LABEL = "bare sqlite3 loop on fh-saas's table, grouped claims and finishes, tasks in threads"
BACKEND, PROCESS = 'sqlite', False


class System(sqlite3_table_batch.System):
    async def setup(self, where):
        await super().setup(where)
        self.pool = ThreadPoolExecutor(8)

    async def run_tasks(self, n):
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, sqlite3_table.noop) for _ in range(n)))

    async def stop(self):
        await super().stop()
        self.pool.shutdown()
