"""Where a PostgreSQL drain spends its CPU: the workers' and the server's CPU per job, fh-saas beside PgQueuer.

The harness (bench/harness.py) times drains; this says where their time goes. For each system: its consumer
processes are started and left idle for a second, then `--jobs` no-op jobs are enqueued in bulk (fh-saas: 10
tenants' rows in one transaction, with a NOTIFY for each tenant; PgQueuer: one `enqueue` call), and the consumers
drain them; beside them, fh-saas's own statements sent by two bare loops with no runner (the harness's
`fh_pg_floor`). The WAL the drain wrote is read from `pg_current_wal_lsn()` (the index entries each status change adds
land there). CPU is read from /proc for the consumer processes (from just before the enqueue, so their start-up is
not counted) and for every PostgreSQL server process (from the end of the enqueue; the enqueue's own share is in a
column of its own) to the last job done. Both cores of this machine serve the workers and the server alike.

    .venv/bin/python bench/cpu_pg.py [--jobs 10000] [--reps 3]     # starts its own PostgreSQL; bench/results/cpu_pg.md
"""
import argparse, asyncio, glob, json, os, platform, shlex, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / 'tests')]
TICK = os.sysconf('SC_CLK_TCK')


def cpu(pid):
    "CPU seconds (user + system) process `pid` has used; 0 once it is gone."
    try: f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError: return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def server_cpu():
    "CPU seconds of every PostgreSQL server process now running, by pid."
    out = {}
    for p in glob.glob('/proc/[0-9]*/comm'):
        try:
            if Path(p).read_text().strip() == 'postgres': out[int(p.split('/')[2])] = cpu(int(p.split('/')[2]))
        except OSError: pass
    return out


def env(url):  # a `$PYTHONPATH` of the caller's goes first: another fh-saas tree can be measured (an A/B; `-P` keeps
    # `python -m` from putting the folder it starts in ahead of it)
    path = os.pathsep.join(filter(None, [os.environ.get('PYTHONPATH'), str(HERE), str(HERE.parent)]))
    return dict(os.environ, PYTHONPATH=path, BENCH_PG_URL=url)


def connected(mon, n):
    return mon.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()").fetchone()[0] >= n


def listening(mon, n):
    return mon.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query ILIKE 'listen%'").fetchone()[0] >= n


class FhSaas:
    "fh-saas: `workers` fh-saas-worker processes with the CLI's defaults, 10 tenant schemas."
    def __init__(self, workers): self.workers, self.label = workers, f"fh-saas, {workers} worker{'s' * (workers > 1)}"

    @staticmethod
    def consumer(url, k):
        "The arguments of worker process `k` (after `python`)."
        return ['-m', 'fh_saas.worker', '--url', url, '--imports', 'systems.fh_pg', '--log-level', 'WARNING']

    def setup(self, url, mon):
        from fh_saas.pg import PgHost, PgJobStore
        from fh_saas.utils_bgtsk import BackgroundTaskManager
        host = PgHost(url)
        self.mgrs = [BackgroundTaskManager(host.create(f"t{k}"), run_here=False) for k in range(10)]
        self.count = "SELECT " + ' + '.join(f"(SELECT count(*) FROM \"tenant_t{k}\".tenant_jobs WHERE status = 'completed')"
                                             for k in range(10))
        self.procs = [subprocess.Popen([sys.executable, '-P', *self.consumer(url, k)], env=env(url)) for k in range(self.workers)]
        while not listening(mon, self.workers): time.sleep(0.05)

    def enqueue(self, n, mon):
        "Every tenant's rows in one transaction, and a NOTIFY per tenant: the workers see the whole backlog at once."
        from fh_saas.pg import CHANNEL
        from systems.fh_pg import anoop
        with mon.transaction():
            for m in self.mgrs:
                rows = [m._new_row('noop', anoop, {}, 3, None, None, None, None, 0) for _ in range(n // 10)]
                cols = ', '.join(rows[0]); vals = ', '.join(f'%({c})s' for c in rows[0])
                with mon.cursor() as cur:
                    cur.executemany(f"INSERT INTO {m.store.qschema}.tenant_jobs ({cols}) VALUES ({vals})", rows)
                mon.execute("SELECT pg_notify(%s, %s)", [CHANNEL, m.store.schema])

    def done(self, mon): return mon.execute(self.count).fetchone()[0]


class FhFloor(FhSaas):
    "fh-saas's own claim and grouped-finish statements in two bare loops (`bench/systems/fh_pg_floor.py`): no runner."
    def __init__(self): super().__init__(2); self.label = "fh-saas's statements, 2 bare loops"

    @staticmethod
    def consumer(url, k): return ['-m', 'systems.fh_pg_floor', url, str(k)]


class PgQueuer:
    "PgQueuer: one worker process with every default (`bench/systems/pgqueuer.py`)."
    label = 'PgQueuer, 1 worker'

    def setup(self, url, mon):
        import asyncpg
        from pgqueuer import Queries
        async def install():
            c = await asyncpg.connect(url); await Queries.from_asyncpg_connection(c).install(); await c.close()
        asyncio.run(install())
        self.url, self.procs = url, [subprocess.Popen([sys.executable, '-P', '-m', 'systems.pgqueuer'], env=env(url))]
        while not connected(mon, 1): time.sleep(0.05)  # its LISTEN connection also dequeues: no LISTEN to wait for

    def enqueue(self, n, mon):
        import asyncpg
        from pgqueuer import Queries
        async def go():
            c = await asyncpg.connect(self.url)
            await Queries.from_asyncpg_connection(c).enqueue(['noop'] * n, [None] * n, [0] * n)
            await c.close()
        asyncio.run(go())

    def done(self, mon):
        return mon.execute("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'").fetchone()[0]


def once(sysm, pg, n, tag):
    import psycopg
    db = f"cpu_{tag}"
    pg.psql(f"CREATE DATABASE {db} OWNER fh")
    url = pg.url.rsplit('/', 1)[0] + '/' + db
    with psycopg.connect(url, autocommit=True) as mon:
        sysm.setup(url, mon)
        try:
            time.sleep(1.5)  # idle: the workers' start-up is over
            w0, s0, t0 = sum(cpu(p.pid) for p in sysm.procs), server_cpu(), time.time()
            sysm.enqueue(n, mon)
            t1, s_mid = time.time(), server_cpu()
            lsn = mon.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            while sysm.done(mon) < n:
                assert all(p.poll() is None for p in sysm.procs), "a worker exited"
                time.sleep(0.01)
            t2 = time.time()
            w1, s1 = sum(cpu(p.pid) for p in sysm.procs), server_cpu()
            wal = mon.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn]).fetchone()[0]
        finally:
            for p in sysm.procs: p.terminate()
            for p in sysm.procs: p.wait(60)
    used = lambda a, b: sum(v - a.get(pid, 0.0) for pid, v in b.items())  # CPU seconds between two readings
    server = used(s_mid, s1)
    return dict(drain=n / (t2 - t1), worker_us=(w1 - w0) / n * 1e6, server_us=server / n * 1e6,
                enqueue_server_us=used(s0, s_mid) / n * 1e6, cores=((w1 - w0) + server) / (t2 - t1), wal_bytes=float(wal) / n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=10_000, help='jobs per drain (a multiple of 10)')
    ap.add_argument('--reps', type=int, default=3, help='repetitions; each figure is their median')
    ap.add_argument('--out', type=Path, default=HERE / 'results', help='folder for cpu_pg.md and cpu_pg.json')
    a = ap.parse_args()
    from pgserver import PgServer
    systems = [FhSaas(2), FhSaas(1), FhFloor(), PgQueuer()]
    runs = {s.label: [] for s in systems}
    with PgServer() as pg:
        for r in range(a.reps):
            for k, s in enumerate(systems):
                runs[s.label].append(x := once(s, pg, a.jobs, f"{r}_{k}"))
                print(f"rep {r + 1}/{a.reps} {s.label:22} " + json.dumps({k: round(v, 2) for k, v in x.items()}), flush=True)
    med = {s: {k: statistics.median(x[k] for x in xs) for k in xs[0]} for s, xs in runs.items()}
    cmd = shlex.join(['.venv/bin/python', 'bench/cpu_pg.py'] + sys.argv[1:])
    date = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    L = [f"Produced by `{cmd}` on {date}, {platform.platform()}, {os.cpu_count()} cores; {a.jobs:,} no-op jobs "
         f"enqueued in bulk, then drained; median of {a.reps}.", '',
         '| system | drain jobs/s | worker CPU us/job | server CPU us/job | total us/job | cores busy | server CPU of the enqueue us/job | WAL bytes/job |',
         '|---|---:|---:|---:|---:|---:|---:|---:|']
    for s, x in med.items():
        L.append(f"| {s} | {x['drain']:,.0f} | {x['worker_us']:.0f} | {x['server_us']:.0f} | "
                 f"{x['worker_us'] + x['server_us']:.0f} | {x['cores']:.2f} | {x['enqueue_server_us']:.0f} | {x['wal_bytes']:,.0f} |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / 'cpu_pg.md').write_text('\n'.join(L) + '\n')
    (a.out / 'cpu_pg.json').write_text(json.dumps(dict(command=cmd, date=date, median=med, runs=runs), indent=1) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
