"""The floor on PostgreSQL: raw psycopg, one job at a time. The web side inserts a row and NOTIFYs in one statement;
one consumer process (`python -m systems.psycopg_raw URL`) claims the oldest pending job with `FOR UPDATE SKIP
LOCKED`, runs the no-op and marks it completed, each write its own committed transaction, and waits on LISTEN
when none is pending. Integer key, one (partial) index."""
import sys, time
import psycopg
from systems import spawn, stop, until

LABEL = 'raw psycopg, one job at a time'
BACKEND, PROCESS = 'pg', True

SCHEMA = """CREATE TABLE jobs (id bigserial PRIMARY KEY, status text NOT NULL DEFAULT 'pending', created_at float8,
                               started_at float8, completed_at float8);
            CREATE INDEX jobs_pending ON jobs (id) WHERE status = 'pending'"""
INSERT = "WITH j AS (INSERT INTO jobs (created_at) VALUES (%s) RETURNING id) SELECT id, pg_notify('jobs', '') FROM j"
CLAIM = ("UPDATE jobs SET status = 'running', started_at = %s WHERE id = (SELECT id FROM jobs WHERE status = 'pending' "
         "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id")
DONE = "UPDATE jobs SET status = 'completed', completed_at = %s WHERE id = %s"


def noop(): return None


def consume(url):
    "The consumer process: claim, run, complete, one job at a time, until SIGTERM."
    db, listen = psycopg.connect(url, autocommit=True), psycopg.connect(url, autocommit=True)
    listen.execute("LISTEN jobs")
    while True:
        row = db.execute(CLAIM, (time.time(),)).fetchone()
        if row is None:
            for _ in listen.notifies(timeout=1.0, stop_after=1): pass
            continue
        noop()
        db.execute(DONE, (time.time(), row[0]))


class System:
    async def setup(self, where):
        self.url, self.proc, self.n = where, None, 0
        self.db = psycopg.connect(where, autocommit=True)
        self.db.execute(SCHEMA)

    async def start(self): self.proc = spawn('-m', 'systems.psycopg_raw', self.url)

    async def submit(self):
        self.n += 1
        return self.db.execute(INSERT, (time.time(),)).fetchone()[0]

    async def done(self, keys):
        def check():
            assert self.proc.poll() is None, "the consumer exited"
            return self.db.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0] >= self.n
        await until(check, every=0.05)
        rows = {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT id, started_at, completed_at FROM jobs")}
        return {k: rows[k] for k in keys}

    async def stop(self):
        stop(self.proc)
        self.db.close()


if __name__ == '__main__': consume(sys.argv[1])
