"""The floor for a sync task on fh-saas's table: `sqlite3_table.py`, with the no-op task handed to a thread and
back (`loop.run_in_executor`), as any runner must do with a sync function it may not run on the event loop."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from systems import sqlite3_table

LABEL = "bare sqlite3 loop on fh-saas's table, task in a thread"
BACKEND, PROCESS = 'sqlite', False


class System(sqlite3_table.System):
    threads = 4  # the pool's size

    async def setup(self, where):
        await super().setup(where)
        self.pool = ThreadPoolExecutor(self.threads)

    async def run_task(self): await asyncio.get_running_loop().run_in_executor(self.pool, sqlite3_table.noop)

    async def stop(self):
        await super().stop()
        self.pool.shutdown()
