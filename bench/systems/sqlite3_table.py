"""The floor on fh-saas's own table: a bare stdlib `sqlite3` loop, no fh-saas code on the path, making the three
committed writes fh-saas's `bg_task` path makes (insert pending, claim by id with its RETURNING, finish) on
fh-saas's schema (text ids, the indexes the dashboard, claims and idempotency keys need) in a file made as fh-saas
makes one (`PAGE_SIZE`-byte pages), WAL + synchronous NORMAL.
What any job runner keeping fh-saas's rows would spend in SQLite alone. The task runs in the submitting coroutine."""
import sqlite3, time
from pathlib import Path
from fh_saas.db_host import gen_id, timestamp, PAGE_SIZE
from fh_saas.jobs import SCHEMA, INDEXES

LABEL = "bare sqlite3 loop on fh-saas's table, same 3 commits"
BACKEND, PROCESS = 'sqlite', False

INSERT = ("INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, max_retries, run_at, func_path, "
          "updated_at) VALUES (?, 'noop', 'pending', '{}', ?, 3, ?, 'systems.sqlite3_table.noop', ?)")
CLAIM = ("UPDATE tenant_jobs SET status = 'running', attempt = attempt + 1, started_at = ?, lease_until = ?, "
         "worker = 'bench', claim_id = ?, updated_at = ? WHERE id = ? AND status = 'pending' AND run_at <= ? "
         "AND cancel_requested = 0 RETURNING id, payload, attempt, timeout")
DONE = ("UPDATE tenant_jobs SET status = 'completed', result = 'null', completed_at = ?, lease_until = NULL, "
        "progress = 1.0, updated_at = ? WHERE id = ? AND status = 'running' AND attempt = ? AND cancel_requested = 0")


def noop(): return None


class System:
    checkpoints = True  # SQLite's own: the commit that takes the log past 1,000 pages copies it into the database

    async def setup(self, where):
        self.db = sqlite3.connect(Path(where) / 'table.db', isolation_level=None)  # autocommit: each write commits
        self.db.execute(f'PRAGMA page_size={PAGE_SIZE}')  # the pages of a file fh-saas makes
        self.db.execute('PRAGMA journal_mode=WAL'); self.db.execute('PRAGMA synchronous=NORMAL')
        if not self.checkpoints: self.db.execute('PRAGMA wal_autocheckpoint=0')
        self.db.executescript(SCHEMA + INDEXES)
        self.running, self.waiting, self.times = False, [], {}

    async def run_task(self): noop()

    async def _run(self, jid):
        t = time.time(); ts = timestamp(t)
        (_, _, attempt, _), = self.db.execute(CLAIM, (ts, t + 60, gen_id(), ts, jid, t)).fetchall()
        await self.run_task()
        e = time.time(); es = timestamp(e)
        assert self.db.execute(DONE, (es, es, jid, attempt)).rowcount == 1
        self.times[jid] = (t, e)

    async def start(self):
        self.running = True
        for jid in self.waiting: await self._run(jid)

    async def submit(self):
        jid, t = gen_id(), time.time(); ts = timestamp(t)
        self.db.execute(INSERT, (jid, ts, t, ts))
        if self.running: await self._run(jid)
        else: self.waiting.append(jid)
        return jid

    async def done(self, keys): return {k: self.times[k] for k in keys}

    async def stop(self): self.db.close()
