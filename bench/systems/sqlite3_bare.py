"""The floor on SQLite: a bare stdlib `sqlite3` loop doing the same three committed writes per job as fh-saas
(insert pending, update to running, update to completed), integer key, one index, WAL + synchronous NORMAL.
Like the `bg_task` path it runs each job in the submitting thread once the consumer runs."""
import sqlite3, time
from pathlib import Path

LABEL = 'bare sqlite3 loop, same 3 commits'
BACKEND, PROCESS = 'sqlite', False

SCHEMA = """CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL, created_at REAL, started_at REAL,
                               completed_at REAL);
            CREATE INDEX jobs_status ON jobs (status);"""
CLAIM = ("UPDATE jobs SET status = 'running', started_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'pending' "
         "ORDER BY id LIMIT 1) RETURNING id")
DONE = "UPDATE jobs SET status = 'completed', completed_at = ? WHERE id = ?"


def noop(): return None


class System:
    async def setup(self, where):
        self.db = sqlite3.connect(Path(where) / 'bare.db', isolation_level=None)  # autocommit: each write commits
        self.db.execute('PRAGMA journal_mode=WAL'); self.db.execute('PRAGMA synchronous=NORMAL')
        self.db.executescript(SCHEMA)
        self.running = False

    def _run_pending(self):
        while (row := self.db.execute(CLAIM, (time.time(),)).fetchone()) is not None:
            noop()
            self.db.execute(DONE, (time.time(), row[0]))

    async def start(self):
        self.running = True
        self._run_pending()

    async def submit(self):
        jid = self.db.execute("INSERT INTO jobs (status, created_at) VALUES ('pending', ?)", (time.time(),)).lastrowid
        if self.running: self._run_pending()
        return jid

    async def done(self, keys):
        rows = {r[0]: r[1:] for r in self.db.execute("SELECT id, started_at, completed_at FROM jobs "
                                                     "WHERE status = 'completed'")}
        assert all(k in rows for k in keys), "jobs not completed"
        return {k: rows[k] for k in keys}

    async def stop(self): self.db.close()
