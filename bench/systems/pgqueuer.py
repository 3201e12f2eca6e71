"""PgQueuer: its schema installed into the fresh database (`Queries.install()`, as `pgq install`), jobs enqueued with
`Queries.enqueue`, one worker process running `pgqueuer.run(main)`, what `pgq run systems.pgqueuer:main` does (that
CLI fails at start-up in 1.6.0 with typer 0.29: `'str' object has no attribute 'name'`), every default: batch size
10, its buffered completion log, and asyncpg, its own default driver (on psycopg its listener holds the single
connection up to 1 s at a time: p99 1 s). Times come from its log table: `picked` and `successful` rows."""
import asyncio, os
from contextlib import asynccontextmanager
import asyncpg, psycopg
import pgqueuer
from pgqueuer import PgQueuer, Queries
from systems import spawn, stop, until

LABEL = 'PgQueuer, 1 worker, defaults'
BACKEND, PROCESS = 'pg', True


@asynccontextmanager
async def main():
    "The worker's factory: one connection, one no-op entrypoint."
    conn = await asyncpg.connect(os.environ['BENCH_PG_URL'])
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint('noop')
    async def noop(job): return None
    try: yield pgq
    finally: await conn.close()


class System:
    async def setup(self, where):
        self.url, self.proc = where, None
        self.conn = await asyncpg.connect(where)
        self.q = Queries.from_asyncpg_connection(self.conn)
        await self.q.install()
        self.mon = psycopg.connect(where, autocommit=True)

    async def start(self): self.proc = spawn('-m', 'systems.pgqueuer', BENCH_PG_URL=self.url)

    async def submit(self): return (await self.q.enqueue('noop', None))[0]

    async def done(self, keys):
        def check():
            assert self.proc.poll() is None, "the worker exited"
            return self.mon.execute("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful' "
                                    "AND job_id = ANY(%s)",
                                    [list(keys)]).fetchone()[0] == len(keys)
        await until(check, every=0.05)
        t = {}
        for jid, status, at in self.mon.execute("SELECT job_id, status::text, extract(epoch FROM created)::float8 "
                                                "FROM pgqueuer_log WHERE status IN ('picked', 'successful')"):
            t.setdefault(jid, {})[status] = at
        return {k: (t[k]['picked'], t[k]['successful']) for k in keys}

    async def stop(self):
        stop(self.proc)
        await self.conn.close(); self.mon.close()


if __name__ == '__main__': asyncio.run(pgqueuer.run(main))
