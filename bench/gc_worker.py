"""What Python's garbage collector costs a PostgreSQL worker, with and without `freeze_heap()` at start-up.

Each repetition writes a backlog of no-op jobs over 10 tenant schemas, then starts a fresh interpreter that does what
`fh-saas-worker` does before it serves (imports `fh_saas.worker` and the task module, builds the `Scheduler` with the
CLI's defaults) and, in one of the two modes, calls `freeze_heap()` as the command does; then it serves until the
backlog is drained and reports every collection the collector made meanwhile (`gc.callbacks`): how many full
(generation 2) collections, their total and longest pause, and the drain's jobs/s. The two modes alternate, each
repetition on its own tenants. No timing assertion: it reports.

    .venv/bin/python bench/gc_worker.py [--jobs 2000,20000] [--reps 3]   # starts its own PostgreSQL; bench/results/gc_worker.md
"""
import argparse, json, os, platform, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / 'results' / 'gc_worker.md'
MODES = {'frozen': "`freeze_heap()` before serving, as `fh-saas-worker` does",
         'not frozen': "the same worker without it (the command before this change)"}


def child(url, tenants, jobs, freeze):
    "In a fresh interpreter: a worker's start-up, then serve until `jobs` are completed; print what the collector did."
    import gc
    import anyio, psycopg
    from fh_saas.worker import freeze_heap, job_source
    from fh_saas.scheduler import Scheduler
    from fh_saas.pg import tenant_schema
    import systems.fh_pg  # noqa: F401 -- the task module, as `--imports systems.fh_pg`
    sched = Scheduler(job_source(url), concurrency=32, per_tenant=8, task_modules=['systems.fh_pg'])
    walked = len(gc.get_objects())  # what a full collection would walk now
    if freeze: freeze_heap()
    pauses, started = [], {}
    def watch(phase, info):
        if phase == 'start': started['t'] = time.perf_counter()
        else: pauses.append((info['generation'], time.perf_counter() - started['t']))
    gc.callbacks.append(watch)
    union = ' UNION ALL '.join(f'SELECT status FROM "{tenant_schema(t)}".tenant_jobs' for t in tenants)
    count = f"SELECT count(*) FROM ({union}) j WHERE status = 'completed'"
    mon = psycopg.connect(url, autocommit=True)
    out = {}
    async def main():
        async with anyio.create_task_group() as tg:
            t = time.perf_counter()
            await tg.start(sched.serve)
            while await anyio.to_thread.run_sync(lambda: mon.execute(count).fetchone()[0]) < jobs: await anyio.sleep(0.02)
            out['drain'] = jobs / (time.perf_counter() - t)
            sched.stop()
    anyio.run(main)
    gc.callbacks.remove(watch)
    full = [d for g, d in pauses if g == 2]
    print(json.dumps(dict(out, walked=walked, full=len(full), full_ms=sum(full) * 1e3, full_max_ms=max(full, default=0) * 1e3,
                          young_ms=sum(d for g, d in pauses if g < 2) * 1e3)))


def backlog(url, tenants, jobs):
    "Write `jobs` no-op jobs over `tenants`, as a web process that only enqueues does."
    from fh_saas.pg import PgHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    from systems.fh_pg import anoop
    host = PgHost(url)
    ms = [BackgroundTaskManager(host.create(t), run_here=False) for t in tenants]
    for i in range(jobs): ms[i % len(ms)].submit('noop', anoop)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', default='2000,20000', help='comma-separated backlog sizes')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--child', nargs=4, metavar=('URL', 'TENANTS', 'JOBS', 'FREEZE'))
    a = ap.parse_args()
    sys.path[:0] = [str(HERE), str(ROOT), str(ROOT / 'tests')]
    if a.child:
        url, tenants, jobs, freeze = a.child
        return child(url, tenants.split(','), int(jobs), freeze == '1')
    from pgserver import PgServer
    sizes = [int(x) for x in a.jobs.split(',')]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    res, k, t0 = {}, 0, time.monotonic()
    with PgServer() as pg:
        for n in sizes:
            for r in range(a.reps):
                for mode in (MODES if r % 2 == 0 else reversed(list(MODES))):
                    k += 1
                    tenants = [f"g{k}x{i}" for i in range(10)]
                    backlog(pg.url, tenants, n)
                    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--child', pg.url, ','.join(tenants),
                                        str(n), '1' if mode == 'frozen' else '0'], capture_output=True, text=True, env=env)
                    if p.returncode: sys.exit(p.stderr)
                    x = json.loads(p.stdout.strip().splitlines()[-1])
                    res.setdefault((n, mode), []).append(x)
                    print(n, mode, x, flush=True)
    med = lambda xs, key: statistics.median(x[key] for x in xs)
    L = ["# What the garbage collector costs a worker", "",
         f"Produced by `.venv/bin/python bench/gc_worker.py --jobs {a.jobs} --reps {a.reps}` on "
         f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC ({time.monotonic() - t0:.0f} s), {platform.platform()}, "
         f"{os.cpu_count()} cores, Python {platform.python_version()}. One worker (the CLI's defaults: concurrency 32, "
         "8 a tenant) drains a backlog of no-op async jobs over 10 tenant schemas, from its start; median of "
         f"{a.reps} repetitions, the modes alternating. *Heap at start*: the objects a full collection walked once the "
         "worker was built (before any freeze). *Full collections*: generation 2, during the drain; *pause*: the "
         "collector's own time, the event loop stopped meanwhile. Young: generations 0 and 1.", "",
         "| backlog | mode | drain jobs/s | heap at start | full collections | their pauses, ms in all | longest, ms | young collections, ms in all |",
         "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        for mode in MODES:
            xs = res[(n, mode)]
            L.append(f"| {n:,} | {mode} | {med(xs, 'drain'):,.0f} | {med(xs, 'walked'):,.0f} | {med(xs, 'full'):.0f} | "
                     f"{med(xs, 'full_ms'):.1f} | {med(xs, 'full_max_ms'):.1f} | {med(xs, 'young_ms'):.1f} |")
    L += ["", "Modes: " + '; '.join(f"*{m}*: {d}" for m, d in MODES.items()) + ".", "",
          "Each repetition: " + '; '.join(f"{n:,} {m}: " + ', '.join(f"{x['full']} full, {x['full_ms']:.1f} ms, {x['drain']:,.0f} jobs/s"
                                                                      for x in res[(n, m)]) for n in sizes for m in MODES) + "."]
    OUT.write_text('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__':
    main()
