"""Huey with SqliteHuey, its consumer in the same process (`create_consumer().start()`: the default one worker of
type thread, polling the table; defaults otherwise). One change, for a like-for-like comparison: SqliteHuey
leaves SQLite at its default, synchronous FULL (its `fsync` option offers only FULL or OFF), an fsync per commit;
fh-saas runs WAL + NORMAL, so Huey does here too. `huey_sqlite_full.py` is Huey as shipped."""
import time
from pathlib import Path
from huey import SqliteHuey, signals
from huey.storage import SqliteStorage
from systems import all_in, until

LABEL = 'Huey, SqliteHuey, in-process consumer, WAL + NORMAL'
BACKEND, PROCESS = 'sqlite', False


class NormalStorage(SqliteStorage):
    "SqliteStorage at synchronous NORMAL, as fh-saas."
    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute('pragma synchronous=NORMAL')
        return conn


def noop(): return None


class System:
    storage = NormalStorage

    async def setup(self, where):
        self.huey = SqliteHuey('bench', filename=str(Path(where) / 'huey.db'), storage_class=self.storage)
        self.task, self.started, self.completed = self.huey.task()(noop), {}, {}
        self.huey.signal(signals.SIGNAL_EXECUTING)(lambda sig, task: self.started.__setitem__(task.id, time.time()))
        self.huey.signal(signals.SIGNAL_COMPLETE)(lambda sig, task: self.completed.__setitem__(task.id, time.time()))
        self.consumer = None

    async def start(self):
        self.consumer = self.huey.create_consumer()
        self.consumer.start()

    async def submit(self): return self.task().id

    async def done(self, keys):
        await until(all_in(keys, self.completed))  # its consumer shares the GIL: a check that rereads every key would cost it
        return {k: (self.started[k], self.completed[k]) for k in keys}

    async def stop(self):
        self.consumer.stop(graceful=True)
        self.huey.storage.close()
