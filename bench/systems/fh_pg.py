"""fh-saas on PostgreSQL: jobs submitted from the web side (`BackgroundTaskManager(host.create(t), run_here=False)`,
round-robin over 10 tenant schemas), run by 2 `fh-saas-worker` processes
(`python -m fh_saas.worker --url URL --concurrency 32 --per-tenant 8 --imports systems.fh_pg`).
The task is `async def anoop()`, as PgQueuer's and Procrastinate's (PgQueuer takes only async entrypoints)."""
from datetime import datetime
import psycopg
from fh_saas.pg import PgHost, tenant_schema
from fh_saas.utils_bgtsk import BackgroundTaskManager
from systems import spawn, stop, until

LABEL = 'fh-saas PostgreSQL, 2 workers'
BACKEND, PROCESS = 'pg', True
TENANTS = [f"t{k}" for k in range(10)]


async def anoop(): return None


class System:
    workers = 2

    async def setup(self, where):
        self.url, host = where, PgHost(where)
        self.mgrs, self.k, self.procs = [BackgroundTaskManager(host.create(t), run_here=False) for t in TENANTS], 0, []
        self.mon = psycopg.connect(where, autocommit=True)
        cols = 'id, status, started_at, completed_at'
        self.union = ' UNION ALL '.join(f'SELECT {cols} FROM "{tenant_schema(t)}".tenant_jobs' for t in TENANTS)

    @staticmethod
    def consumer(url, k):
        "The arguments of consumer process `k` (after `python`)."
        return ['-m', 'fh_saas.worker', '--url', url, '--concurrency', '32', '--per-tenant', '8',
                '--imports', 'systems.fh_pg', '--log-level', 'WARNING']

    async def start(self):
        self.procs = [spawn(*self.consumer(self.url, k)) for k in range(self.workers)]
        listening = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND query ILIKE 'listen%'")  # each worker LISTENs once its scheduler runs
        await until(lambda: self.alive() and self.mon.execute(listening).fetchone()[0] >= self.workers,
                    what='the workers to listen')

    def alive(self):
        assert all(p.poll() is None for p in self.procs), "a worker exited"
        return True

    async def submit(self):
        self.k += 1
        return self.mgrs[self.k % len(self.mgrs)].submit('noop', anoop)[0]

    async def done(self, keys):
        count = f"SELECT count(*) FROM ({self.union}) j WHERE status = 'completed'"
        await until(lambda: self.alive() and self.mon.execute(count).fetchone()[0] >= self.k, every=0.05)
        ts = lambda s: datetime.fromisoformat(s).timestamp()
        rows = {r[0]: (ts(r[2]), ts(r[3])) for r in self.mon.execute(f"SELECT * FROM ({self.union}) j")
                if r[1] == 'completed'}
        return {k: rows[k] for k in keys}

    def firsts(self):
        "When each worker started its first job (epoch seconds)."
        rows = self.mon.execute(f"SELECT min(started_at) FROM ({self.union.replace('SELECT id,', 'SELECT worker, id,')}) j "
                                "WHERE started_at IS NOT NULL GROUP BY worker").fetchall()
        return sorted(datetime.fromisoformat(r[0]).timestamp() for r in rows)

    async def stop(self):
        stop(*self.procs)
        self.mon.close()
