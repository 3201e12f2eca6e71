"""fh-saas and its peers side by side, in one run: the same no-op job, the same three measurements.

  end to end  2,000 jobs enqueued while the consumer runs: jobs/s = 2,000 / (first enqueue -> last completed)
  drain       2,000 jobs enqueued, no consumer running; then the consumer starts: jobs/s = 2,000 / (consumer
              start -> last completed); for a consumer in a worker process, from the first job started, so that
              Python's start-up is not counted (the start-up is kept in peers.json)
  latency     after 20 warm-up jobs, 200 jobs 5 ms apart: submit -> completed, p50 and p99 ms

Every system (`bench/systems/<name>.py`) runs in a fresh Python process per repetition, the repetitions interleaved
across systems; each measurement gets a fresh SQLite directory or a fresh database on one throwaway PostgreSQL
server (tests/pgserver.py). Every figure is the median of the repetitions; each repetition's figures are in
bench/results/peers.json. How steady the machine was is measured alone before and after the run (bench/noise.py).
No assertion on speed: it reports, it does not judge.

    .venv/bin/python bench/harness.py [--reps 3] [--only fh_pg,pgqueuer] [--quick]
Needs the peers: `.venv/bin/pip install -e '.[bench]'`. Where an in-process path spends its time:
    .venv/bin/pyinstrument bench/harness.py --child fh_sqlite_sync
"""
import argparse, asyncio, atexit, importlib, json, os, platform, shlex, shutil, sqlite3, statistics, subprocess, sys
import tempfile, time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
from noise import noise, SLOW  # bench/noise.py, beside this script
from cpu_pg import cpu  # a process's CPU seconds, from /proc
SYSTEMS = ['fh_sqlite_sync', 'fh_sqlite_async', 'fh_sqlite_sync_uvloop', 'fh_sqlite_async_uvloop', 'fh_sqlite_async_straight', 'fh_sqlite_sync_straight', 'fh_sqlite_sched', 'fh_sqlite_sched_sync', 'fh_sqlite_sched_uvloop',
           'fh_sqlite_sched_sync_uvloop', 'huey_sqlite', 'huey_sqlite_full', 'sqlite3_bare', 'sqlite3_table',
           'sqlite3_table_thread', 'sqlite3_table_batch', 'sqlite3_table_batch_thread', 'sqlite3_table_nockpt',
           'sqlite3_table_thread_nockpt', 'sqlite3_table_batch_nockpt', 'sqlite3_table_batch_thread_nockpt', 'sqlite3_table_ckthread',
           'sqlite3_table_thread_ckthread', 'sqlite3_table_least_thread', 'sqlite3_table_batch_ckthread', 'sqlite3_table_batch_thread_ckthread', 'fh_pg', 'fh_pg_1w', 'fh_pg_floor', 'fh_pg_min',
           'pgqueuer', 'procrastinate', 'psycopg_raw', 'route']
PEERS = ['fh-saas', 'huey', 'pgqueuer', 'procrastinate', 'psycopg', 'psycopg-pool', 'python-fasthtml', 'starlette',
         'uvicorn', 'httpx']
WARMUP, GAP = 20, 0.005


def system(name): return importlib.import_module(f'systems.{name}')


def pct(xs, q):
    "The q-th percentile (0-100) of xs, nearest rank."
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


# ---------------------------------------------------------------- the child: one system, one repetition
async def end_to_end(s, n):
    await s.start()
    await s.done([await s.submit() for _ in range(WARMUP)])
    t0 = time.time()
    keys = [await s.submit() for _ in range(n)]
    t1 = time.time()
    done = await s.done(keys)
    return dict(e2e=n / (max(c for _, c in done.values()) - t0), enqueue=n / (t1 - t0))


async def drain(s, n, process):
    keys = [await s.submit() for _ in range(n)]
    t0 = time.time()
    await s.start()
    done = await s.done(keys)
    last, first = max(c for _, c in done.values()), min(st for st, _ in done.values())
    out = dict(drain=n / (last - (first if process else t0)), drain_wall=n / (last - t0), startup_s=first - t0)
    if hasattr(s, 'firsts') and len(f := s.firsts()) > 1: out['skew_ms'] = 1e3 * (f[-1] - f[0])  # the last worker's late start
    return out


async def warm_drain(s, n):
    "A drain with the consumers already up: started and warmed, stopped (SIGSTOP) while the backlog is written, resumed."
    import signal
    await s.start()
    await s.done([await s.submit() for _ in range(WARMUP)])
    procs = getattr(s, 'procs', None) or [s.proc]
    start_cpu = statistics.median(cpu(p.pid) for p in procs)  # a consumer's start-up, and its warm-up jobs
    for p in procs: os.kill(p.pid, signal.SIGSTOP)
    try: keys = [await s.submit() for _ in range(n)]
    finally:
        t0 = time.time()
        for p in procs: os.kill(p.pid, signal.SIGCONT)
    done = await s.done(keys)
    return dict(drain_warm=n / (max(c for _, c in done.values()) - t0), start_cpu_ms=1e3 * start_cpu)



async def latency(s, n):
    await s.start()
    await s.done([await s.submit() for _ in range(WARMUP)])
    subs, calls = [], []
    for _ in range(n):
        t = time.time()
        subs.append((await s.submit(), t))
        calls.append(1e3 * (time.time() - t))  # the submitting call alone (an in-app path runs the job in it too)
        await asyncio.sleep(GAP)
    done = await s.done([k for k, _ in subs])
    ms = [1e3 * (done[k][1] - t) for k, t in subs]
    return dict(p50=pct(ms, 50), p99=pct(ms, 99), submit_p50=pct(calls, 50), submit_p99=pct(calls, 99))


def arun(loop, coro):
    "Run `coro` on event loop `loop`: `asyncio` (its own) or `uvloop` (a system says which with `LOOP = 'uvloop'`)."
    if loop == 'asyncio': return asyncio.run(coro)
    import uvloop  # installed with python-fasthtml (uvicorn[standard])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r: return r.run(coro)


def fresh(mod, pg_url, tag):
    "A fresh empty directory, or a fresh database on the server (its URL)."
    if mod.BACKEND == 'sqlite':
        d = tempfile.mkdtemp(prefix=f'bench-{tag}-', dir=os.environ.get('BENCH_WORK'))
        atexit.register(shutil.rmtree, d, True)
        return d
    import psycopg
    name = f"bench_{tag}_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as c: c.execute(f'CREATE DATABASE "{name}"')
    return pg_url.rsplit('/', 1)[0] + '/' + name


def child(name, pg_url, n, lat_n, quick):
    "Run every measurement of system `name` once; print its figures as one JSON line."
    mod, out = system(name), {}
    if hasattr(mod, 'measure'):
        out = asyncio.run(mod.measure(fresh(mod, pg_url, 'route'), quick))
        out = {f"{k[:-3]}_{q}": pct(v, q) for k, v in out.items() for q in (50, 99)}
    else:
        phases = [('e2e', lambda s: end_to_end(s, n)), ('drain', lambda s: drain(s, n, mod.PROCESS))]
        if mod.PROCESS: phases.append(('warm', lambda s: warm_drain(s, n)))
        for phase, run in phases + [('lat', lambda s: latency(s, lat_n))]:
            async def go():
                s = mod.System()
                await s.setup(fresh(mod, pg_url, phase))
                try: return await run(s)
                finally: await s.stop()
            out.update(arun(getattr(mod, 'LOOP', 'asyncio'), go()))
    print(json.dumps(out))


# ---------------------------------------------------------------- the parent: servers, repetitions, report
def run_child(name, pg, a, log):
    cmd = [sys.executable, __file__, '--child', name, '--pg-url', pg.url if pg else '', '--jobs', str(a.jobs),
           '--lat-jobs', str(a.lat_jobs)] + ['--quick'] * a.quick
    os.sync()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=dict(os.environ, BENCH_LOG=str(log)))
    if pg:  # every database this run made
        import psycopg
        with psycopg.connect(pg.url, autocommit=True) as c:
            for (db,) in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'").fetchall():
                c.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
    os.sync()  # what this system wrote reaches the disk now, not during the next system's fsyncs
    if p.returncode: return dict(error=(p.stderr.strip().splitlines() or ['?'])[-1], stderr=p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def ratio_rows(m, ess=None):
    """The ratios issue 14 asks for: (what, target, value(s), verdict of each value). A verdict is met, not met, or
    out of reach: for a SQLite row, the least a runner can spend on its path (`least`) is under the target; for a
    PostgreSQL drain, fh-saas's own statements in two bare loops (`fh_pg_floor`) drain under the ratio asked; for
    the p99, fh-saas's own statements one job at a time (`fh_pg_min`) are over it."""
    g = lambda s, k: (m.get(s) or {}).get(k)
    div = lambda a, b: a / b if a is not None and b else None
    ok = lambda t, v: v >= float(t[3:]) if t[:2] == '>=' else v <= float(t[3:])
    verdict = lambda t, v, reach: 'met' if ok(t, v) else 'out of reach' if reach is not None and not ok(t, reach) else 'not met'
    rows = [('fh-saas PG, 2 workers / PgQueuer: drain', '>= 1.5', [div(g('fh_pg', 'drain'), g('pgqueuer', 'drain'))],
             [div(g('fh_pg_floor', 'drain'), g('pgqueuer', 'drain'))]),
            ('fh-saas PG, 2 workers / PgQueuer: drain, consumers warm', '>= 1.5',
             [div(g('fh_pg', 'drain_warm'), g('pgqueuer', 'drain_warm'))],
             [div(g('fh_pg_floor', 'drain_warm'), g('pgqueuer', 'drain_warm'))])]
    for peer, what, target in (('huey_sqlite', 'Huey (WAL + NORMAL, as fh-saas)', '>= 2'),
                               ('huey_sqlite_full', 'Huey as shipped (WAL + FULL)', '>= 2'),
                               ('sqlite3_bare', 'bare sqlite3 loop', '>= 0.40')):
        for path, s, _ in (SQLITE_PATHS[i] for i in RATIO_ORDER):
            task = path.replace(', `bg_task` path', '')  # as the rows have always been named
            vs = [div(g(s, k), g(peer, k)) for k in ('e2e', 'drain')]
            if vs == [None, None]: continue  # a system this run did not measure
            rows.append((f"fh-saas SQLite, {task} / {what}: end to end, drain", target, vs,
                         [div(least(g, path, k, ess), g(peer, k)) for k in ('e2e', 'drain')]))
    rows.append(('fh-saas PG, 2 workers: p99 latency (ms)', '<= 5', [g('fh_pg', 'p99')], [g('fh_pg_min', 'p99')]))
    rows.append(('submitting route / bare `BackgroundTask` route: p50', '<= 1.25',
                 [div(g('route', 'submit_50'), g('route', 'bare_50'))], [None]))
    return [(w, t, vs, None if None in vs else [verdict(t, v, r) for v, r in zip(vs, reach)]) for w, t, vs, reach in rows]


#: statements a job sends on each in-process SQLite path, `(scheduler?, measure)`: the `bg_task` path's insert, claim
#: and finish (the drain's rows are written first); the scheduler's insert, claim and finish for a job a submit told it
#: of, and a drain's claim and grouped finish for a round of up to 7 jobs
STATEMENTS = {(False, 'e2e'): 3, (False, 'drain'): 2, (True, 'e2e'): 1 + 2 / 7, (True, 'drain'): 2 / 7}

#: fh-saas's `bg_task` paths: the system that calls fh-saas's own pieces in a straight line, in one loop
STRAIGHT = {'fh_sqlite_async': 'fh_sqlite_async_straight', 'fh_sqlite_sync': 'fh_sqlite_sync_straight'}

#: fh-saas's in-process SQLite paths: (what, its system, the floor under it)
SQLITE_PATHS = (('async task, `bg_task` path', 'fh_sqlite_async', 'sqlite3_table'),
                ('sync task, `bg_task` path', 'fh_sqlite_sync', 'sqlite3_table_thread'),
                ('async task, in-app scheduler', 'fh_sqlite_sched', 'sqlite3_table_batch'),
                ('sync task, in-app scheduler', 'fh_sqlite_sched_sync', 'sqlite3_table_batch_thread'),
                ('async task, in-app scheduler on uvloop', 'fh_sqlite_sched_uvloop', 'sqlite3_table_batch'),
                ('sync task, in-app scheduler on uvloop', 'fh_sqlite_sched_sync_uvloop', 'sqlite3_table_batch_thread'),
                ('async task, `bg_task` path on uvloop', 'fh_sqlite_async_uvloop', 'sqlite3_table'),
                ('sync task, `bg_task` path on uvloop', 'fh_sqlite_sync_uvloop', 'sqlite3_table_thread'))

#: the paths in the order issue 14's ratio rows list them
RATIO_ORDER = (1, 0, 7, 6, 2, 3, 4, 5)

#: the floors, one per path on asyncio's loop (the uvloop paths share them)
FLOORS = tuple((path, fl) for path, _, fl in SQLITE_PATHS if not path.endswith('on uvloop'))


def least(g, path, k, ess):
    """The least any runner keeping fh-saas's rows, promises and a bounded log can spend a job on `path` (jobs/s,
    measure `k`): the floor with its log kept from a thread, plus a runner's essentials, fh-saas's guarantees and its
    pooled connections, as `bench/runner_essentials.py` measured them in the same run; `None` if not measured."""
    _, s, fl = next(p for p in SQLITE_PATHS if p[0] == path)
    fk = g(fl + '_ckthread', k)
    if fk is None or not ess: return None
    kind = 'sync' if path.startswith('sync') else 'async'
    return 1e6 / (1e6 / fk + ess[kind][k] + ess.get('guarantees', 0.0) + ess.get('pool', 0.0) * STATEMENTS[('sched' in s, k)])


def standing(g, f, ess=None):
    """Each SQLite target beside fh-saas and the floors under it: met; out of reach (over the least a runner can spend:
    the floor with a bounded log kept from a thread, plus a runner's essentials, fh-saas's guarantees and its pool);
    or not met."""
    gua, poo = (ess or {}).get('guarantees', 0.0), (ess or {}).get('pool', 0.0)
    L = ["", "Where each SQLite target stands in this run. *Least*: the least any runner keeping fh-saas's rows, its "
         "promises and a bounded log can spend a job: the floor whose log is kept from a thread, plus a runner's "
         "essentials in Python, plus what fh-saas's runner keeps for each attempt beyond them, written straight, "
         "plus its store's connections (`bench/runner_essentials.py`, measured in this run: "
         + (', '.join(f"{kind} task {ess[kind]['e2e']:.1f} us end to end and {ess[kind]['drain']:.1f} us drained"
                      for kind in ('async', 'sync')) + f"; beyond them {gua:.1f} us: a slot, the function resolved from "
            "the row, the attempt's context and lease held from claim to outcome, the outcome classified by the retry "
            f"rules and told to the hooks; and {poo:.1f} us a statement for a pooled connection lent and taken back, "
            "which a store shared by the event loop, job threads, the lease keeper and its checkpoint thread, with its "
            "open files capped across thousands of tenants, pays: three statements a job end to end, two drained on "
            "the `bg_task` path; in the scheduler, the insert a job and two a round of up to 7 jobs end to end, two a round drained" if ess else 'not measured')
         + "). *Left*: what the target leaves a job "
         "beyond that least (negative: the target asks for less time than the least). *Straight line* (the `bg_task` "
         "paths): fh-saas's own pieces called one after another in one loop, with nothing between them "
         "(`fh_sqlite_async_straight`, `fh_sqlite_sync_straight`): its submission checks and row, its store's insert, "
         "claim and finish on its pooled connections with the log kept bounded, the runner's slot, function, context "
         "and lease, the task, the outcome settled, classified and told. Where the least adds the pieces timed alone "
         "to the floor, this runs them beside SQLite's statements, as a runner does, and measures what they cost "
         "together. *met*; *out of reach*: the target is over the least, so no runner keeping fh-saas's rows, "
         "promises and a bounded log, and sending fh-saas's statements, can reach it here; *not met*: fh-saas is "
         "under the target and the target under the least; *(straight line too)*: fh-saas's own pieces in a straight "
         "line miss it as well in this run, so no handling around them could make fh-saas meet it.", "",
         "| path | measure | target | asked | fh-saas | straight line | floor | no checkpoints | log kept from a thread | least | left (us) | stands |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for path, s, fl in SQLITE_PATHS:
        for k, what in (('e2e', 'end to end'), ('drain', 'drain')):
            for target, peer, x in (('0.40 x bare loop', 'sqlite3_bare', 0.4), ('2 x Huey as shipped', 'huey_sqlite_full', 2),
                                    ('2 x Huey (WAL + NORMAL)', 'huey_sqlite', 2)):
                v, asked, f1, f0, fk = g(s, k), g(peer, k), g(fl, k), g(fl + '_nockpt', k), g(fl + '_ckthread', k)
                if None in (v, asked): continue
                asked *= x
                lst = least(g, path, k, ess)
                left = None if lst is None else 1e6 / asked - 1e6 / lst
                sl = g(STRAIGHT[s], k) if s in STRAIGHT else None
                st = ('met' if v >= asked else '-' if lst is None else 'out of reach' if lst < asked else
                      '**not met** (straight line too)' if sl is not None and sl < asked else '**not met**')
                L.append(f"| {path} | {what} | {target} | {f(asked)} | {f(v)} | {f(sl)} | {f(f1)} | {f(f0)} | {f(fk)} | "
                         f"{f(lst)} | {'-' if left is None else f'{left:+.1f}'} | {st} |")
    return L


def floors(m, runs=None, ess=None):
    "The targets beside the floors under them: what no code keeping fh-saas's rows (and statements) can beat, in this run."
    g, runs = (lambda s, k: (m.get(s) or {}).get(k)), runs or {}
    f = lambda v, scale=1: '-' if v is None else f"{v * scale:,.0f}"
    L = []
    if g('sqlite3_table', 'e2e') or g('sqlite3_table_thread', 'e2e'):
        L += ["", "## The floors under the SQLite targets", "",
              "A floor is a bare loop with no fh-saas code on fh-saas's table. Under the `bg_task` path, fh-saas's three "
              "writes a job (`sqlite3_table`), and the same handing the task to a thread and back as a sync task needs "
              "(`sqlite3_table_thread`): a target above them cannot be met by any runner that keeps fh-saas's rows and "
              "commits each job's states one by one. Under the in-app scheduler, its own claim of up to 7 jobs and "
              "its grouped finish (`sqlite3_table_batch`), the tasks handed to threads for a sync task "
              "(`sqlite3_table_batch_thread`); jobs submitted while it runs are claimed a round at a time, a round at most every `cooldown` (2 ms), as the scheduler claims a burst of submits. "
              "Each floor sends fh-saas's own statements with fh-saas's parameters, and is run three ways: paying "
              "SQLite's own checkpoints in the committing thread, as a plain `sqlite3` loop does; with no checkpoint "
              "at all (`*_nockpt`), its log growing for as long as the run lasts; and with its log kept bounded from a "
              "thread of its own (`*_ckthread`), as fh-saas keeps a store's: past `WAL_LIMIT` that thread copies the "
              "log into the database while the loop writes on, then restarts it in a short pause of the loop's "
              "writes. A runner must keep its log bounded, and copying it costs the writing thread even when another "
              "thread does the copying (the files and the disk are shared): the third is the floor the targets are "
              "judged against. All figures in jobs/s.", "",
              "| path | measure | its floor | no checkpoints | log kept from a thread | 0.40 x bare loop | 2 x Huey as shipped | 2 x Huey (WAL + NORMAL) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for path, fl in FLOORS:  # the floors run on asyncio's loop: the uvloop paths share them
            for k, what in (('e2e', 'end to end'), ('drain', 'drain')):
                L.append(f"| {path} | {what} | {f(g(fl, k))} | {f(g(fl + '_nockpt', k))} | {f(g(fl + '_ckthread', k))} | "
                         f"{f(g('sqlite3_bare', k), 0.4)} | {f(g('huey_sqlite_full', k), 2)} | {f(g('huey_sqlite', k), 2)} |")
        L += standing(g, f, ess)
    if g('fh_pg_floor', 'drain'):
        r = lambda a, b: '-' if a is None or not b else f"{a / b:.2f}"
        skews = ', '.join(f"{x['skew_ms']:.0f}" for x in runs.get('fh_pg', []) if 'skew_ms' in x)
        L += ["", "## The floor under the PostgreSQL drain target", "",
              "The floor is fh-saas's own claim and grouped-finish statements, on fh-saas's tables, sent by two bare "
              "loops with no scheduler and no runner (`fh_pg_floor`): the drain two workers would reach if fh-saas's "
              "scheduler and runner cost nothing. Drain jobs/s, cold (the consumers start with the backlog written) and "
              "with the consumers warm. In the cold drain the two workers of `fh_pg` started their first jobs "
              f"{skews or '-'} ms apart (by repetition): the second worker's start-up runs inside it, on the same two "
              f"cores, and a worker's start-up took {f(g('fh_pg', 'start_cpu_ms'))} ms of CPU (PgQueuer's "
              f"{f(g('pgqueuer', 'start_cpu_ms'))}; from its launch to its first {WARMUP} jobs done, read from "
              "`/proc`).", "",
              "| drain | fh-saas, 2 workers | its floor | 1.5 x PgQueuer | fh-saas / PgQueuer | floor / PgQueuer | fh-saas / floor |",
              "|---|---:|---:|---:|---:|---:|---:|"]
        for k, what in (('drain', 'cold'), ('drain_warm', 'consumers warm')):
            fl, pq, fh = g('fh_pg_floor', k), g('pgqueuer', k), g('fh_pg', k)
            L.append(f"| {what} | {f(fh)} | {f(fl)} | {f(pq, 1.5)} | {r(fh, pq)} | {r(fl, pq)} | {r(fh, fl)} |")
    if g('fh_pg_min', 'p99'):
        ms = lambda s, k: '-' if g(s, k) is None else f"{g(s, k):.2f}"
        L += ["", "## The floor under the p99 target", "",
              "The floor is fh-saas's own submit, claim and finish statements, one job at a time, sent by one bare "
              "consumer in one thread with no scheduler and no runner (`fh_pg_min`): the latency any runner sending "
              "fh-saas's statements would have in this run. Raw psycopg (`psycopg_raw`) sends three small statements "
              "on a table with one index. Latency in ms, 200 jobs 5 ms apart, median of the repetitions, and "
              "each repetition's p99; *submit*: the submitting call's own time, part of every job's latency.", "",
              "| system | p50 | p99 | p99 of each repetition | submit p50 | submit p99 |", "|---|---:|---:|---|---:|---:|"]
        for s in ('fh_pg', 'fh_pg_1w', 'fh_pg_min', 'psycopg_raw'):
            if g(s, 'p99') is not None:
                reps = ', '.join(f"{r['p99']:.1f}" for r in runs.get(s, []) if 'p99' in r)
                L.append(f"| `{s}` | {ms(s, 'p50')} | {ms(s, 'p99')} | {reps} | {ms(s, 'submit_p50')} | {ms(s, 'submit_p99')} |")
    return L


def report(res, out):
    f = lambda v, spec=',.0f': '-' if v is None else format(v, spec)
    e, m, raw = res['env'], res['median'], res['runs']
    def rng(s, k):  # the range of the repetitions
        xs = [r[k] for r in raw[s] if k in r]
        return f" ({f(min(xs))}-{f(max(xs))})" if len(xs) > 1 else ''
    L = ["# fh-saas and its peers, side by side", "",
         f"Produced by `{res['command']}` on {res['date']} ({res['elapsed_s']:.0f} s).", "",
         f"Machine: {e['platform']}, {e['cores']} cores, Python {e['python']}, SQLite {e['sqlite']}, {e['postgres']} "
         f"(fsync on). Versions: {', '.join(f'{k} {v}' for k, v in e['versions'].items())}; fh-saas from "
         f"`{e['fh_saas_source']}`. Load average (1/5/15 min) "
         f"at start {'/'.join(f'{x:.2f}' for x in e['load_start'])}, at end {'/'.join(f'{x:.2f}' for x in e['load_end'])}."
         + (f" How steady the machine was (`bench/noise.py`, 10 s of Python arithmetic alone, before / after the run): "
            f"{100 * e['noise_start']['slow_share']:.1f} / {100 * e['noise_end']['slow_share']:.1f} % of the time in pieces "
            f"running {SLOW} times slower than the median piece or more, {e['noise_start']['slow_windows_per_s']:.1f} / "
            f"{e['noise_end']['slow_windows_per_s']:.1f} such slowed 10 ms windows a second." if 'noise_start' in e else ''),
         "", f"A no-op job. **End to end**: {res['params']['jobs']:,} jobs enqueued one after another while the consumer "
         f"runs, jobs/s = jobs / (first enqueue -> last completed). **Drain**: {res['params']['jobs']:,} jobs enqueued "
         "with no consumer running, then it starts: jobs/s = jobs / (consumer start -> last completed); for a consumer "
         "in a worker process (PostgreSQL rows) from the first job started, so that Python's start-up is excluded: "
         "the start-up of the first consumer process to start a job is, that of a second one (`fh_pg` has two) is "
         "not. **Drain, consumers warm** (consumers in worker processes only): the consumers are started and have "
         f"run {WARMUP} jobs, then are stopped (SIGSTOP) while the same backlog is written and resumed (SIGCONT): "
         "jobs/s = jobs / (resume -> last completed); no process starts inside it. "
         f"**Latency**: {WARMUP} warm-up jobs, then {res['params']['lat_jobs']} jobs {GAP * 1e3:.0f} ms apart, submit "
         "-> completed as the system itself records it. Median of "
         f"{res['params']['reps']} repetitions, each system in a fresh process per repetition, interleaved; the range "
         "of the repetitions in brackets. *Enqueue jobs/s*: the submitting loop's own rate in the end-to-end run (one "
         "client, one job at a time; the in-app paths run each job in it too). fh-saas and `bench/systems` are "
         "byte-compiled before the run, as `pip install` compiles an installed package (the peers come installed "
         "from PyPI): without it every worker process compiles fh-saas again at start-up wherever "
         "`PYTHONDONTWRITEBYTECODE` is set, as it is here. What each system runs: below, and "
         "`bench/systems/<name>.py`.", "",
         "| system | file | end to end jobs/s | drain jobs/s | drain jobs/s, consumers warm | p50 ms | p99 ms | enqueue jobs/s (end to end run) |",
         "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in res['systems']:
        if s == 'route': continue
        x = m.get(s) or {}
        if not x:
            L.append(f"| {res['labels'][s]} | `{s}` | not run: {raw[s][-1].get('error', '?')} | | | | | |")
            continue
        L.append(f"| {res['labels'][s]} | `{s}` | {f(x.get('e2e'))}{rng(s, 'e2e')} | {f(x.get('drain'))}{rng(s, 'drain')} | "
                 f"{f(x.get('drain_warm'))}{rng(s, 'drain_warm')} | {f(x.get('p50'), '.2f')} | {f(x.get('p99'), '.2f')} | {f(x.get('enqueue'))} |")
    if 'route' in res['systems']:
        x = m.get('route') or {}
        L += ["", "Submitting route (`route`): request -> whole response read, keep-alive client, the two routes in "
              "turn, 2,000 requests each after 100 warm-up (300 with `--quick`).", "",
              "| route | p50 ms | p99 ms |", "|---|---:|---:|",
              f"| `Div(...), manager.submit('noop', noop)[1]` | {f(x.get('submit_50'), '.3f')} | {f(x.get('submit_99'), '.3f')} |",
              f"| `Div(...), BackgroundTask(noop)` | {f(x.get('bare_50'), '.3f')} | {f(x.get('bare_99'), '.3f')} |"]
    L += ["", "## What each system runs", ""] + [f"- `{s}`: {res['notes'][s]}" for s in res['systems']]
    L += ["", "## Issue 14's ratios", "",
          "*out of reach*: the target cannot be met by a runner sending fh-saas's statements here, in this run: for a "
          "SQLite row the least such a runner can spend on its path is under it (the standing below); for a PostgreSQL "
          "drain, fh-saas's own statements sent by two bare loops (`fh_pg_floor`) drain under the ratio asked; for the "
          "p99, fh-saas's own statements one job at a time (`fh_pg_min`) are over it.", "",
          "| ratio | target | this run | met |", "|---|---|---:|---|"]
    word = {True: 'met', False: '**not met**', 'met': 'met', 'not met': '**not met**', 'out of reach': 'out of reach'}
    for w, t, vs, ok in res['ratios']:
        verdict = '-' if ok is None else ' / '.join(word[o] for o in ok)  # as the values (a report before verdicts: booleans)
        L.append(f"| {w} | {t} | {' / '.join(f(v, '.2f') for v in vs)} | {verdict} |")
    L += floors(m, raw, e.get('essentials'))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'peers.md').write_text('\n'.join(L) + '\n')
        (out / 'peers.json').write_text(json.dumps(res, indent=1) + '\n')
    return '\n'.join(L)


def compiled():
    "Byte-compile fh-saas and the systems' files, as `pip install` does for an installed package (peers have theirs)."
    import compileall, fh_saas
    for d in (Path(fh_saas.__file__).parent, HERE / 'systems'): compileall.compile_dir(str(d), quiet=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=3, help='repetitions; every figure is their median')
    ap.add_argument('--only', help='comma-separated systems to run (default: all): ' + ','.join(SYSTEMS))
    ap.add_argument('--quick', action='store_true', help='a smoke run: 300 jobs, 50 latency jobs, 1 repetition')
    ap.add_argument('--jobs', type=int, help='jobs per throughput measurement (default 2,000)')
    ap.add_argument('--lat-jobs', type=int, help='jobs in the latency measurement (default 200)')
    ap.add_argument('--out', type=Path, help='folder for peers.md and peers.json (default bench/results; '
                                             'with --quick: none, the report is printed only)')
    ap.add_argument('--rewrite', action='store_true', help="write peers.md again from peers.json's figures (after the report's own code changed)")
    ap.add_argument('--child'); ap.add_argument('--pg-url')
    a = ap.parse_args()
    if a.rewrite:
        out = a.out or HERE / 'results'
        res = json.loads((out / 'peers.json').read_text())
        res['ratios'] = ratio_rows(res['median'], res['env'].get('essentials'))  # the verdicts as this code gives them
        return report(res, out)
    a.jobs = a.jobs or (300 if a.quick else 2000)
    a.lat_jobs = a.lat_jobs or (50 if a.quick else 200)
    if a.child: return child(a.child, a.pg_url, a.jobs, a.lat_jobs, a.quick)
    reps = 1 if a.quick else a.reps
    names = a.only.split(',') if a.only else SYSTEMS
    if unknown := set(names) - set(SYSTEMS): ap.error(f"unknown systems: {', '.join(sorted(unknown))}")
    mods = {s: system(s) for s in names}
    pp = os.environ.get('PYTHONPATH')  # e.g. another checkout's fh_saas
    cmd = (f"PYTHONPATH={pp} " if pp else '') + shlex.join(['.venv/bin/python', 'bench/harness.py'] + sys.argv[1:])
    compiled()
    t0, load0 = time.monotonic(), os.getloadavg()
    noise0 = noise(10.0)
    work = Path(tempfile.mkdtemp(prefix='bench-peers-'))
    os.environ['BENCH_WORK'] = str(work)
    sys.path.insert(0, str(ROOT / 'tests'))
    from pgserver import PgServer
    pg = PgServer().start() if any(m.BACKEND == 'pg' for m in mods.values()) else None
    try:
        pgv = '-'
        if pg:
            import psycopg
            with psycopg.connect(pg.url) as c: pgv = ' '.join(c.execute("SELECT version()").fetchone()[0].split()[:2])
        runs = {s: [] for s in names}
        for r in range(reps):
            for s in names:
                runs[s].append(x := run_child(s, pg, a, work / 'workers.log'))
                figs = 'ERROR ' + x['error'] if 'error' in x else json.dumps({k: round(v, 2) for k, v in x.items()})
                print(f"rep {r + 1}/{reps} {s:16} {figs}", flush=True)
    finally:
        if pg: pg.close()
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    noise1 = noise(10.0)
    from runner_essentials import measure  # beside this script: a runner's least Python a job, on this machine now
    ess = measure() if any(s.startswith('sqlite3_table') for s in names) else None
    keys = lambda rs: dict.fromkeys(k for r in rs for k in r if k not in ('error', 'stderr'))
    median = {s: {k: statistics.median([r[k] for r in rs if k in r]) for k in keys(rs)} for s, rs in runs.items()}
    import fh_saas
    src = Path(fh_saas.__file__).parent  # which fh-saas was measured: its folder, commit, uncommitted changes
    git = lambda *a: subprocess.run(['git', '-C', src, *a], capture_output=True, text=True).stdout.strip()
    env = dict(platform=platform.platform(), cores=os.cpu_count(), python=platform.python_version(),
               sqlite=sqlite3.sqlite_version, postgres=pgv, versions={p: version(p) for p in PEERS},
               fh_saas_source=f"{src} at commit {git('rev-parse', '--short', 'HEAD') or '?'}"
                              + (', with uncommitted changes' if git('status', '--porcelain', '.') else ''),
               load_start=load0, load_end=load1, noise_start=noise0, noise_end=noise1, essentials=ess)
    res = dict(command=cmd, date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               elapsed_s=time.monotonic() - t0, env=env, params=dict(jobs=a.jobs, lat_jobs=a.lat_jobs, reps=reps),
               systems=names, labels={s: m.LABEL for s, m in mods.items()}, median=median, runs=runs,
               notes={s: ' '.join(m.__doc__.split()) for s, m in mods.items()})
    res['ratios'] = ratio_rows(median, ess)
    out = a.out or (None if a.quick else HERE / 'results')
    print(report(res, out))


if __name__ == '__main__': main()
