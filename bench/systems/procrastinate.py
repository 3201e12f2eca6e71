"""Procrastinate with its psycopg connector: its schema applied into the fresh database, jobs deferred with
`defer_async`, one worker process started by its own CLI (`python -m procrastinate --app systems.procrastinate.app
worker`) with every default (concurrency 1, LISTEN/NOTIFY). Times come from its `procrastinate_events` table."""
import os
import psycopg
from procrastinate import App, PsycopgConnector
from systems import spawn, stop, until

LABEL = 'Procrastinate, 1 worker, defaults'
BACKEND, PROCESS = 'pg', True

app = App(connector=PsycopgConnector(conninfo=os.environ.get('BENCH_PG_URL', '')))  # the worker's app


@app.task(name='noop')
async def noop(): return None


class System:
    async def setup(self, where):
        self.url, self.proc = where, None
        self.app = await App(connector=PsycopgConnector(conninfo=where)).open_async()  # the web side's app
        await self.app.schema_manager.apply_schema_async()
        self.defer = self.app.configure_task('noop')
        self.mon = psycopg.connect(where, autocommit=True)

    async def start(self):
        self.proc = spawn('-m', 'procrastinate', '--app', 'systems.procrastinate.app', 'worker', BENCH_PG_URL=self.url)

    async def submit(self): return await self.defer.defer_async()

    async def done(self, keys):
        want = list(keys)
        def check():
            assert self.proc.poll() is None, "the worker exited"
            return self.mon.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded' "
                                    "AND id = ANY(%s)",
                                    [want]).fetchone()[0] == len(want)
        await until(check, every=0.05)
        t = {}
        for jid, kind, at in self.mon.execute("SELECT job_id, type::text, extract(epoch FROM at)::float8 "
                                              "FROM procrastinate_events WHERE type IN ('started', 'succeeded')"):
            t.setdefault(jid, {})[kind] = at
        return {k: (t[k]['started'], t[k]['succeeded']) for k in keys}

    async def stop(self):
        stop(self.proc)
        await self.app.close_async(); self.mon.close()
