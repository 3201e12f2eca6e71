"""Scheduler benchmark: idle cost of watching many tenant databases, and recovery of a crashed process's jobs.

Every measurement runs in a fresh child process (`python bench/bench_scheduler.py --child ...`, PYTHONPATH=bench),
so CPU time and RSS are the scheduler's own:
  1. idle: N tenant databases (each made by `SqliteHost.create` + `BackgroundTaskManager(url)`, holding one
     completed job), `Scheduler(host, poll=P)` idle for D seconds once it has looked at every tenant. Reports the
     start-up time (`running()` entered: `serve`'s `task_status.started()`), the time until every tenant was looked
     at once, CPU % of one core, CPU ms per poll, RSS, `sched.stats`, how many databases each poll queried, and the
     open files (`/proc/self/fd`) after a job ran in each of 100 tenants (submitted in the child, from a thread, as
     a sync route would). With N >= 5,000 a second run of the largest folder idles longer (`--long-seconds`), so
     that its window holds the safety net's looks at every database.
  2. recovery: 100 tenants x 10 no-op jobs; 500 left `running` under a lease held by a dead worker, 500 `pending`
     (variant "dead pid": lease 30 s ahead, held by pid 999999999 of this host, boot and pid namespace, which does
     not run; variant "expired lease": lease 60 s past, worker on another host). Reports, from the scheduler's start,
     time to the first and to the last completion.
  3. PostgreSQL: a throwaway server (tests/pgserver.py), one database per size with 10, 1,000 and 10,000 tenant
     schemas (`--pg-schemas`), each schema's `tenant_jobs` holding one completed job. A worker (`Scheduler(PgHost)`
     with `fh-saas-worker`'s defaults: concurrency 32, per tenant 8, poll 5 s) idles D seconds once it has looked at
     every schema: its own CPU, the server's CPU (every server process, from /proc) against the same window with no
     worker connected, and the queries it made; then the parent submits 5 jobs, 1 s apart, into random schemas
     (`run_here=False`: the insert's NOTIFY is all the worker hears) and reads each claim's latency from the rows
     (`started_at - created_at`).
No timing assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_scheduler.py [--tenants 1000] [--idle-seconds 30] [--quick] [--pg-schemas 10,1000,10000]
"""
import argparse, asyncio, collections, json, os, platform, random, resource, shlex, shutil, socket, sqlite3, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'

def _dead_worker():
    "A lease holder as `worker_id()` writes it, of this host, boot and pid namespace, whose process is gone."
    from fh_saas.jobs import worker_id
    w = worker_id().split(':')
    w[1], w[5] = '999999999', 'dead'
    return ':'.join(w)
DEAD_WORKER = _dead_worker()
OTHER_WORKER = "some-other-host.invalid:4242:gone"


def noop(): return None  # the task of every job; children import it as `bench_scheduler:noop`


# ---------------------------------------------------------------- helpers (both sides)
def rss_kb():
    d = {}
    for line in Path('/proc/self/status').read_text().splitlines():
        k, _, v = line.partition(':')
        if k in ('VmRSS', 'VmHWM', 'Threads'): d[k] = int(v.split()[0])
    return d

def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def n_fds():
    try: return len(os.listdir('/proc/self/fd'))
    except OSError: return None

def fd_kinds():
    "Open files by kind: database, its -wal, its -shm, anything else."
    out = collections.Counter()
    for f in os.listdir('/proc/self/fd'):
        try: p = os.readlink(f'/proc/self/fd/{f}')
        except OSError: continue
        out['-wal' if p.endswith('-wal') else '-shm' if p.endswith('-shm') else '.db' if p.endswith('.db') else 'other'] += 1
    return dict(out)

def spread(xs, n):
    "n items of xs, evenly spread."
    return xs[::max(1, len(xs) // n)][:n] if n else []

async def first_look(sched, timeout=600):
    "Wait until `sched` has looked at every tenant once (since issue 14 that happens after start-up, in the background)."
    import anyio
    with anyio.move_on_after(timeout):   # `unseen`: tenants listed at the start and not looked at yet
        while getattr(sched, 'unseen', 0): await anyio.sleep(0.005)


# ---------------------------------------------------------------- child: idle
def child_idle(a):
    import anyio
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    host = SqliteHost(a.dir)
    sched = Scheduler(host, poll=a.poll, task_modules=['bench_scheduler'])
    scans, loops = [], [0]
    orig_scan, orig_dispatch = sched.scan, sched._dispatch

    def scan(force=False):  # runs in a job thread: its thread CPU time is the cost of one poll's scan
        t, c = perf_counter(), time.thread_time()
        q = orig_scan(force)
        scans.append(dict(at=perf_counter(), wall_ms=(perf_counter() - t) * 1e3,
                          cpu_ms=(time.thread_time() - c) * 1e3, queried=q, force=force))
        return q
    async def dispatch(tg):  # called once per wake-up of the scheduler's loop
        loops[0] += 1
        return await orig_dispatch(tg)
    sched.scan, sched._dispatch = scan, dispatch

    async def main():
        import bench_scheduler as mod   # the task, importable as `bench_scheduler:noop`
        from fh_saas.utils_bgtsk import BackgroundTaskManager
        cpu0, t0 = cpu_s(), perf_counter()
        async with sched.running():
            t_start, cpu_start = perf_counter(), cpu_s()
            await first_look(sched)
            t1, cpu1 = perf_counter(), cpu_s()
            stats1, loops1, mem1 = dict(sched.stats), loops[0], rss_kb()
            await anyio.sleep(a.seconds)
            t2, cpu2 = perf_counter(), cpu_s()
            stats2, loops2, mem2, fds = dict(sched.stats), loops[0], rss_kb(), n_fds()
            # a job in each of `jobs_in` tenants, submitted here from a thread (as a sync route would), run by the scheduler
            ts, runs0 = spread(host.tenants(), a.jobs_in), sched.stats['runs']
            def submit():
                for t in ts: BackgroundTaskManager(host.url(t)).submit('noop', mod.noop)
            t3 = perf_counter()
            await anyio.to_thread.run_sync(submit)
            with anyio.move_on_after(120):
                while sched.stats['runs'] - runs0 < len(ts): await anyio.sleep(0.01)
            t4 = perf_counter()
            await anyio.sleep(2 * a.poll)
            fds_jobs, kinds, ran = n_fds(), fd_kinds(), sched.stats['runs'] - runs0
        breakdown = scan_breakdown(host, sched)
        idle = [s for s in scans if t1 <= s['at'] <= t2]
        d = lambda k: stats2[k] - stats1[k]
        return dict(
            tenants=len(host.tenants()), poll=a.poll, idle_s=t2 - t1,
            startup_s=t_start - t0, startup_cpu_s=cpu_start - cpu0, first_look_s=t1 - t0, first_look_cpu_s=cpu1 - cpu0,
            startup_scan=scans[0] if scans else None,
            idle_cpu_s=cpu2 - cpu1, idle_cpu_pct=100 * (cpu2 - cpu1) / (t2 - t1),
            polls=len(idle), loop_wakeups=loops2 - loops1,
            cpu_ms_per_poll=1e3 * (cpu2 - cpu1) / max(1, len(idle)),
            scan_cpu_ms=[round(s['cpu_ms'], 3) for s in idle], scan_wall_ms=[round(s['wall_ms'], 3) for s in idle],
            queried_per_poll=[s['queried'] for s in idle],
            stats_after_startup=stats1, stats_end=stats2,
            idle_scans=d('scans'), idle_queries=d('queries'),
            rss_kb_start=mem1['VmRSS'], rss_kb=mem2['VmRSS'], rss_hwm_kb=mem2['VmHWM'], threads=mem2['Threads'],
            open_fds=fds, jobs_in=len(ts), jobs_ran=ran, jobs_s=t4 - t3, open_fds_after_jobs=fds_jobs,
            fd_kinds_after_jobs=kinds, scan_breakdown_ms=breakdown)
    return anyio.run(main)


def scan_breakdown(host, sched, reps=5):
    "Where one idle poll's time goes: `host.tenants()` and a whole idle `scan()`, each timed alone (median ms)."
    parts = {'host.tenants()': lambda: host.tenants(), 'whole scan() (idle)': lambda: sched.scan()}
    out = {}
    for k, f in parts.items():
        xs = []
        for _ in range(reps):
            t = perf_counter(); f(); xs.append((perf_counter() - t) * 1e3)
        out[k] = round(median(xs), 2)
    return out


# ---------------------------------------------------------------- child: recovery
def child_recover(a):
    import anyio
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    host = SqliteHost(a.dir)
    sched = Scheduler(host, concurrency=a.concurrency, task_modules=['bench_scheduler'])   # the crashed process's tasks
    done, first, last, all_done = [0], [None], [None], None
    orig_run = sched._run

    async def run(st, row):  # one job, claimed by the scheduler, run to its recorded end
        await orig_run(st, row)
        done[0] += 1
        now = perf_counter()
        if first[0] is None: first[0] = now
        last[0] = now
        if done[0] >= a.expect: all_done.set()
    sched._run = run

    async def main():
        nonlocal all_done
        all_done = anyio.Event()
        cpu0, t0 = cpu_s(), perf_counter()
        async with sched.running():
            t_scan = perf_counter()
            stats_scan = dict(sched.stats)
            with anyio.move_on_after(a.timeout): await all_done.wait()
            t_end = perf_counter()
            cpu1 = cpu_s()
            stats = dict(sched.stats)
        counts = {}
        for st in sched.stores():  # the truth, from the databases
            for r in st._exec("SELECT status, COUNT(*) AS n FROM tenant_jobs GROUP BY status"):
                counts[r['status']] = counts.get(r['status'], 0) + r['n']
        span = (last[0] - t0) if last[0] else None
        return dict(tenants=len(host.tenants()), jobs=a.expect, concurrency=a.concurrency, completed_runs=done[0],
                    timed_out=done[0] < a.expect, startup_scan_s=t_scan - t0, stats_after_startup_scan=stats_scan,
                    first_done_s=None if first[0] is None else first[0] - t0, all_done_s=span,
                    jobs_per_s=a.expect / span if span and done[0] >= a.expect else None,
                    jobs_per_s_after_first=(a.expect - 1) / (last[0] - first[0]) if span and last[0] > first[0] else None,
                    cpu_s=cpu1 - cpu0, cpu_pct=100 * (cpu1 - cpu0) / (t_end - t0), stats=stats, final_counts=counts,
                    rss_kb=rss_kb()['VmRSS'])
    return anyio.run(main)


# ---------------------------------------------------------------- PostgreSQL: many schemas
TICK = os.sysconf('SC_CLK_TCK')

def pg_cpu(pg):
    "{pid: CPU s} of the server's postmaster and all its children (/proc)."
    pm = int((pg.data / 'postmaster.pid').read_text().split()[0])
    out = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: f = (d / 'stat').read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(d.name) == pm or int(f[1]) == pm: out[int(d.name)] = (int(f[11]) + int(f[12])) / TICK
    return out

def pg_cpu_delta(a, b): return sum(v - a.get(p, 0.0) for p, v in b.items())

def make_pg_schemas(url, n):
    "n tenant schemas, each `tenant_jobs` (the first made by `PgHost.create`, the others LIKE it) holding one completed job."
    import psycopg
    from fh_saas.pg import PgHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    import bench_scheduler as mod
    host = PgHost(url)
    m = BackgroundTaskManager(host.create('t00000'), run_here=False)
    jid, _ = m.submit('noop', mod.noop)
    row = m.store.claim(jid, time.time(), 30, 'bench:setup')
    m.store.finish(jid, row['attempt'], 'completed', time.time(), result='null')
    with psycopg.connect(host.conninfo, autocommit=True) as c:
        for lo in range(1, n, 200):
            with c.transaction():
                for i in range(lo, min(n, lo + 200)):
                    s = f'"tenant_t{i:05d}"'
                    c.execute(f"CREATE SCHEMA {s}")
                    c.execute(f'CREATE TABLE {s}.tenant_jobs (LIKE "tenant_t00000".tenant_jobs INCLUDING ALL)')
                    c.execute(f'INSERT INTO {s}.tenant_jobs SELECT * FROM "tenant_t00000".tenant_jobs')
        c.execute("VACUUM ANALYZE")
    return host


def child_pg(a):
    "A worker as `fh-saas-worker` builds it; says when its idle window starts and ends; stops when told (stdin)."
    import anyio
    from fh_saas.pg import PgHost
    from fh_saas.scheduler import Scheduler
    sched = Scheduler(PgHost(a.url), concurrency=32, per_tenant=8, poll=a.poll, lease=30.0, grace=30.0,
                      task_modules=['bench_scheduler'])
    say = lambda **kw: print(json.dumps(kw), flush=True)
    async def main():
        cpu0, t0 = cpu_s(), perf_counter()
        async with sched.running():
            t1 = perf_counter()
            await first_look(sched, timeout=900)
            t2, cpu2, st2 = perf_counter(), cpu_s(), dict(sched.stats)
            say(event='idle', startup_s=t1 - t0, first_look_s=t2 - t0, first_look_cpu_s=cpu2 - cpu0)
            await anyio.sleep(a.seconds)
            t3, cpu3, st3 = perf_counter(), cpu_s(), dict(sched.stats)
            say(event='busy', idle_s=t3 - t2, idle_cpu_s=cpu3 - cpu2, idle_cpu_pct=100 * (cpu3 - cpu2) / (t3 - t2),
                idle_queries=st3['queries'] - st2['queries'], idle_scans=st3['scans'] - st2['scans'])
            await anyio.to_thread.run_sync(sys.stdin.readline)   # the parent's jobs ran: stop
            st4 = dict(sched.stats)
        say(event='end', stats=st4, rss_kb=rss_kb()['VmRSS'], threads=rss_kb()['Threads'])
    anyio.run(main)


def run_pg(pg, url, n, seconds, poll=5.0, jobs=5, gap=1.0):
    "One worker over `n` schemas: start-up, idle cost (its own and the server's), latency of claims after a submit."
    from datetime import datetime
    from fh_saas.pg import PgHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    import bench_scheduler as mod
    host = PgHost(url)
    rnd = random.Random(n)
    mgrs = [BackgroundTaskManager(host.url(f"t{rnd.randrange(n):05d}"), run_here=False) for _ in range(jobs)]
    c0 = pg_cpu(pg); time.sleep(seconds); c1 = pg_cpu(pg)
    server_alone = 100 * pg_cpu_delta(c0, c1) / seconds   # the server with no worker: autovacuum, checkpointer, ...
    cmd = [sys.executable, str(HERE / 'bench_scheduler.py'), '--child', 'pg', '--url', url, '--seconds', str(seconds),
           '--poll', str(poll)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get('PYTHONPATH')])))
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ids = []
    try:
        r = json.loads(p.stdout.readline())                     # idle: it has looked at every schema
        c2 = pg_cpu(pg)
        r.update(json.loads(p.stdout.readline()))               # busy: its idle window is over
        c3 = pg_cpu(pg)
        for m in mgrs:
            ids.append((m, m.submit('noop', mod.noop)[0])); time.sleep(gap)
        end = time.time() + 120
        while time.time() < end and any(m.get_job(i).status != 'completed' for m, i in ids): time.sleep(0.05)
        p.stdin.write('stop\n'); p.stdin.flush()
        r.update(json.loads(p.stdout.readline()))
        p.wait(60)
    finally:
        if p.poll() is None: p.kill()
    lat = []
    for m, i in ids:
        j = m.get_job(i)
        lat.append(None if not j.started_at else
                   1e3 * (datetime.fromisoformat(j.started_at) - datetime.fromisoformat(j.created_at)).total_seconds())
    r.update(schemas=n, poll=poll, server_cpu_pct=100 * pg_cpu_delta(c2, c3) / r['idle_s'],
             server_alone_cpu_pct=server_alone, claim_ms=lat)
    return r


# ---------------------------------------------------------------- parent: setup
def tenants(d, n):
    "Yield (host, manager, module) for n new tenants in folder d; the module's `noop` is importable by the child."
    from fh_saas.db_host import SqliteHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    import bench_scheduler as mod
    host = SqliteHost(d)
    for i in range(n):
        t = f"t{i:05d}"
        host.create(t)
        m = BackgroundTaskManager(host.url(t))
        yield host, m, mod
        m.store.close()


def make_idle_tenants(d, n):
    "n tenants, each with its tenant_jobs table and one completed job."
    host = None
    for host, m, mod in tenants(d, n):
        jid, _ = m.submit('noop', mod.noop)
        row = m.store.claim(jid, time.time(), 30, 'bench:setup')
        m.store.finish(jid, row['attempt'], 'completed', time.time(), result='null')
    return host


def make_crashed_tenants(d, n_tenants, per, variant):
    "n_tenants x per jobs; half running under a dead worker's lease (per `variant`), half pending."
    host = None
    for host, m, mod in tenants(d, n_tenants):
        ids = [m.submit('noop', mod.noop)[0] for _ in range(per)]
        for jid in ids[:per // 2]:
            if variant == 'dead pid': r = m.store.claim(jid, time.time(), 30, DEAD_WORKER)
            else: r = m.store.claim(jid, time.time(), -60, OTHER_WORKER)
            assert r is not None
    return host


def run_child(kind, **kw):
    cmd = [sys.executable, str(HERE / 'bench_scheduler.py'), '--child', kind]
    for k, v in kw.items(): cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get('PYTHONPATH')])))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"child {kind} {kw} failed with {p.returncode}")
    if p.stderr.strip(): print('  child stderr:', p.stderr.strip()[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report
def fmt(x, nd=1):
    if x is None: return '-'
    return f"{x:,.{nd}f}"

def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if s else None

def rng(runs):
    xs = [r['all_done_s'] for r in runs if r['all_done_s'] is not None]
    return f"{min(xs):.3f}-{max(xs):.3f}" if xs else '-'

def write_report(out, cmd, env, a, idle, rec, pg, setup, wall):
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    hidden = ("child", "dir", "url", "poll", "seconds", "expect", "concurrency", "timeout")
    data = dict(command=cmd, date=now, machine=env, options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()
                if k not in hidden}, setup_s=setup, wall_s=wall, idle=idle, recovery=rec, pg=pg)
    (out / 'scheduler.json').write_text(json.dumps(data, indent=1))
    L = [f"# fh-saas scheduler benchmark\n",
         f"Produced by `{cmd}` on {now} ({wall:.0f} s).\n",
         f"Machine: Python {env['python']}, SQLite {env['sqlite']}, {env['cores']} cores ({env['usable_cores']} usable), "
         f"{env['platform']}; fh-saas {env['fh_saas']}, anyio {env['anyio']}; code at commit {env['git_commit']}"
         f"{' (fh_saas/ has uncommitted changes)' if env['fh_saas_dirty'] else ''}. Load average (1/5/15 min) at start {env['loadavg_start']}, at end {env['loadavg_end']}.\n",
         "Every row is one fresh child process (`python bench/bench_scheduler.py --child ...`); CPU is "
         "`getrusage(RUSAGE_SELF)` user+sys inside the child. Raw figures, including every poll's scan: `scheduler.json`.\n"]
    if idle:
        L += ["## 1. Idle cost\n",
              "Tenants made with `SqliteHost.create` + `BackgroundTaskManager(url)`, each holding one completed job. "
              "`Scheduler(host, poll=P)`; `async with sched.running(): ...`. *Start-up* = time for `running()` to enter "
              "(`serve`'s `task_status.started()`); *first look* = time from the start until every tenant was looked at once "
              "(the same as start-up before issue 14, when the start-up scan looked at every tenant before serving). The idle "
              "window starts after the first look. *CPU/poll* = idle CPU / polls in the window; *scan CPU* = median thread CPU "
              "of one poll's `scan()`. *queried* = databases queried during the window (`stats['queries']` delta: first looks and "
              "the safety net's looks included), then by each poll's `scan()` alone. "
              f"*fds* = open files at the end of the window; *after jobs* = open files once a job ran in each of {a.jobs_in} "
              "tenants (submitted in the child from a thread, like a sync route; counted two polls after the last one ended).\n",
              "| tenants | poll s | window s | start-up s | first look s | idle CPU % of 1 core | CPU ms / poll | scan CPU ms (median) | "
              "scan wall ms (median) | polls | queried in window | queried per poll | RSS MB | fds | fds after jobs (db/wal/shm/other) | stats at end |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
        for r in idle:
            qp = r['queried_per_poll']
            qps = ', '.join(map(str, qp[:4])) + (f", … ({len(qp)})" if len(qp) > 4 else '')
            st, k = r['stats_end'], r['fd_kinds_after_jobs']
            L.append(f"| {r['tenants']:,} | {r['poll']} | {r['idle_s']:.0f} | {r['startup_s']:.2f} | {r['first_look_s']:.2f} | "
                     f"{r['idle_cpu_pct']:.2f} | {r['cpu_ms_per_poll']:.1f} | {fmt(median(r['scan_cpu_ms']))} | "
                     f"{fmt(median(r['scan_wall_ms']))} | {r['polls']} | {r['idle_queries']:,} | {qps} | {r['rss_kb'] / 1024:.1f} | "
                     f"{r['open_fds']} | {r['open_fds_after_jobs']} ({k.get('.db', 0)}/{k.get('-wal', 0)}/{k.get('-shm', 0)}/"
                     f"{k.get('other', 0)}; {r['jobs_ran']} jobs in {r['jobs_s']:.2f} s) | "
                     f"scans={st['scans']} queries={st['queries']:,} runs={st['runs']} |")
        big = max(idle, key=lambda r: r['tenants'])
        L += ["", f"Where an idle poll's time goes with {big['tenants']:,} tenants (each part timed alone in the child after "
              "its window, median of 5, ms):\n", "| part | ms |", "|---|---:|"]
        L += [f"| `{k}` | {v} |" for k, v in big['scan_breakdown_ms'].items()]
    if rec:
        L += ["", "## 2. Recovery at startup\n",
              f"{a.rec_tenants} tenants x {a.rec_per} jobs (task: `bench_scheduler:noop`, a no-op sync function). Half "
              "left `running` as by a crashed process, half `pending`. *dead pid*: worker "
              f"`{DEAD_WORKER}`, lease 30 s in the future (only the dead-pid check frees it early). *expired lease*: "
              f"worker `{OTHER_WORKER}`, lease 60 s in the past. Fresh child runs `Scheduler(host, concurrency=8)`; times from "
              "just before `running()` is entered; completions counted in the child as each scheduled run returns, "
              "checked against the databases after.\n",
              f"Each variant is run {a.reps} times on fresh databases; the row is the run with the median *all done* "
              "time, *range* gives min-max of *all done* over the runs.\n",
              "| variant | jobs | start-up s | first job done s | all done s | all done range s | jobs/s (from start) "
              "| jobs/s (first→last) | CPU % | rescued | final status counts |",
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
        for r in rec:
            L.append(f"| {r['variant']} | {r['jobs']:,} | {r['startup_scan_s']:.3f} | {fmt(r['first_done_s'], 3)} | "
                     f"{fmt(r['all_done_s'], 3)} | {rng(r['runs'])} | {fmt(r['jobs_per_s'], 0)} | {fmt(r['jobs_per_s_after_first'], 0)} | "
                     f"{r['cpu_pct']:.0f} | {r['stats']['rescued']} | {json.dumps(r['final_counts'])} |")
    if pg:
        L += ["", "## 3. PostgreSQL: a worker over many tenant schemas\n",
              f"One throwaway server ({pg[0].get('postgres', '')}, tests/pgserver.py), one database per row, each schema's "
              "`tenant_jobs` holding one completed job. The worker is `Scheduler(PgHost(url), concurrency=32, per_tenant=8, "
              f"poll={pg[0]['poll']:g})` (`fh-saas-worker`'s defaults) in a child process. *Start-up* and *first look* as above. "
              f"Idle window {a.idle_seconds:g} s after the first look: the worker's own CPU, the server's (every server process, "
              "from /proc) during the window, and in brackets the server's over a window of the same length with no worker "
              "connected. Then 5 jobs are submitted from the parent, 1 s apart, into random schemas (`run_here=False`: only "
              "the insert's NOTIFY tells the worker); *claim ms* = the row's `started_at - created_at`.\n",
              "| schemas | start-up s | first look s | worker idle CPU % | server CPU % (alone) | queries in window | "
              "first claim ms | claims ms (5) | worker RSS MB |",
              "|---:|---:|---:|---:|---|---:|---:|---|---:|"]
        for r in pg:
            cl = r['claim_ms']
            L.append(f"| {r['schemas']:,} | {r['startup_s']:.2f} | {r['first_look_s']:.2f} | {r['idle_cpu_pct']:.2f} | "
                     f"{r['server_cpu_pct']:.2f} ({r['server_alone_cpu_pct']:.2f}) | {r['idle_queries']:,} | "
                     f"{fmt(cl[0] if cl else None)} | {', '.join(fmt(x) for x in cl)} | {r['rss_kb'] / 1024:.1f} |")
    L += ["", f"Setup (making the databases, in the parent): " + ', '.join(f"{k} {v:.1f} s" for k, v in setup.items()) + "."]
    (out / 'scheduler.md').write_text('\n'.join(L) + '\n')


def git_info():
    "The commit measured (read-only git commands)."
    root = HERE.parent
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--', 'fh_saas'], cwd=root, capture_output=True,
                                    text=True).stdout.strip())
        return dict(git_commit=head or None, fh_saas_dirty=dirty)
    except OSError: return dict(git_commit=None, fh_saas_dirty=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tenants', type=int, default=1000, help='tenants in the large idle runs (a tenth of it in the small ones)')
    ap.add_argument('--idle-seconds', type=float, default=30.0, help='idle window measured per run')
    ap.add_argument('--long-seconds', type=float, default=150.0, help='with --tenants >= 5000: one more run of the largest '
                    'folder idling this long, so that the safety net looks at every database inside its window (0: none)')
    ap.add_argument('--jobs-in', type=int, default=100, help='tenants that get a job after the idle window (open files counted after)')
    ap.add_argument('--quick', action='store_true', help='small and fast: 200/20 tenants, 5 s idle, 20x10 jobs, 10/200 schemas')
    ap.add_argument('--reps', type=int, default=3, help='repetitions of each recovery run (median reported)')
    ap.add_argument('--pg-schemas', default='10,1000,10000', help="schema counts of the PostgreSQL runs ('' for none)")
    ap.add_argument('--sections', default='idle,recovery,pg', help='which sections to run, comma-separated')
    ap.add_argument('--out', type=Path, default=RESULTS, help='directory for scheduler.md and scheduler.json')
    # child mode (internal)
    ap.add_argument('--child', choices=['idle', 'recover', 'pg'], help=argparse.SUPPRESS)
    ap.add_argument('--dir', help=argparse.SUPPRESS)
    ap.add_argument('--url', help=argparse.SUPPRESS)
    ap.add_argument('--poll', type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument('--seconds', type=float, default=30.0, help=argparse.SUPPRESS)
    ap.add_argument('--expect', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--concurrency', type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument('--timeout', type=float, default=90.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == 'pg': return child_pg(a)
    if a.child:
        r = child_idle(a) if a.child == 'idle' else child_recover(a)
        print(json.dumps(r)); return

    if a.quick:
        a.tenants, a.idle_seconds, a.long_seconds = min(a.tenants, 200), min(a.idle_seconds, 5.0), 0
        if a.pg_schemas == ap.get_default('pg_schemas'): a.pg_schemas = '10,200'
    sections = set(a.sections.split(','))
    small = max(1, a.tenants // 10)
    a.rec_tenants, a.rec_per = (20, 10) if a.quick else (100, 10)
    cmd = shlex.join([os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    env = dict(python=platform.python_version(), sqlite=sqlite3.sqlite_version, cores=os.cpu_count(),
               usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
               platform=platform.platform(), fh_saas=version('fh-saas'), anyio=version('anyio'), **git_info())
    print(f"Python {env['python']}, SQLite {env['sqlite']}, {env['cores']} cores; command: {cmd}")
    sys.path.insert(0, str(HERE))
    load0 = [round(x, 2) for x in os.getloadavg()]
    tmp, t_all, setup = Path(tempfile.mkdtemp(prefix='fhsaas-sched-bench-')), perf_counter(), {}
    idle, rec, pg_rows = [], [], []
    try:
        if 'idle' in sections:
            big, little = tmp / f'idle{a.tenants}', tmp / f'idle{small}'
            t = perf_counter(); make_idle_tenants(big, a.tenants); setup[f'{a.tenants} idle tenants'] = perf_counter() - t
            t = perf_counter(); make_idle_tenants(little, small); setup[f'{small} idle tenants'] = perf_counter() - t
            runs = [(big, a.tenants, 2.0, a.idle_seconds), (big, a.tenants, 0.5, a.idle_seconds),
                    (little, small, 2.0, a.idle_seconds), (little, small, 0.5, a.idle_seconds)]
            if a.tenants >= 5000 and a.long_seconds: runs.append((big, a.tenants, 2.0, a.long_seconds))
            for d, n, poll, secs in runs:
                print(f"idle: {n} tenants, poll={poll}, {secs:g} s ...", flush=True)
                r = run_child('idle', dir=d, poll=poll, seconds=secs, jobs_in=a.jobs_in)
                idle.append(r)
                print(f"  start-up {r['startup_s']:.2f} s, first look {r['first_look_s']:.2f} s, idle CPU {r['idle_cpu_pct']:.2f} % "
                      f"({r['cpu_ms_per_poll']:.1f} ms/poll, {r['polls']} polls), queried {r['idle_queries']} "
                      f"{r['queried_per_poll'][:5]}, RSS {r['rss_kb'] / 1024:.1f} MB, fds {r['open_fds']}, "
                      f"after {r['jobs_ran']} jobs {r['open_fds_after_jobs']} {r['fd_kinds_after_jobs']}", flush=True)
        if 'recovery' in sections:
            for variant in ('dead pid', 'expired lease'):
                runs = []
                for i in range(a.reps):
                    d = tmp / (f'rec{i}-' + variant.replace(' ', '-'))
                    t = perf_counter(); make_crashed_tenants(d, a.rec_tenants, a.rec_per, variant)
                    setup[f'recovery ({variant}) tenants'] = setup.get(f'recovery ({variant}) tenants', 0) + perf_counter() - t
                    n = a.rec_tenants * a.rec_per
                    print(f"recovery ({variant}) #{i + 1}: {n} jobs in {a.rec_tenants} tenants ...", flush=True)
                    r = run_child('recover', dir=d, expect=n, concurrency=8)
                    runs.append(r)
                    print(f"  scan {r['startup_scan_s']:.3f} s, first {fmt(r['first_done_s'], 3)} s, all {fmt(r['all_done_s'], 3)} s,"
                          f" {fmt(r['jobs_per_s'], 0)} jobs/s, rescued {r['stats']['rescued']}, {r['final_counts']}", flush=True)
                runs.sort(key=lambda r: r['all_done_s'] if r['all_done_s'] is not None else float('inf'))
                rec.append(dict(variant=variant, **runs[len(runs) // 2], runs=[{k: r[k] for k in (
                    'startup_scan_s', 'first_done_s', 'all_done_s', 'jobs_per_s', 'final_counts')} for r in runs]))
        sizes = [int(x) for x in a.pg_schemas.split(',') if x.strip()]
        if 'pg' in sections and sizes:
            sys.path.insert(0, str(HERE.parent / 'tests'))
            from pgserver import PgServer
            import psycopg
            with PgServer() as srv:
                with psycopg.connect(srv.url, autocommit=True) as c:
                    ver = ' '.join(c.execute("SELECT version()").fetchone()[0].split()[:2])
                for n in sizes:
                    srv.psql(f"CREATE DATABASE s{n} OWNER fh")
                    url = srv.url.rsplit('/', 1)[0] + f'/s{n}'
                    t = perf_counter(); make_pg_schemas(url, n); setup[f'{n} PostgreSQL schemas'] = perf_counter() - t
                    print(f"pg: {n} schemas (made in {setup[f'{n} PostgreSQL schemas']:.1f} s), worker idle {a.idle_seconds:g} s ...", flush=True)
                    r = run_pg(srv, url, n, a.idle_seconds)
                    r['postgres'] = ver
                    pg_rows.append(r)
                    print(f"  start-up {r['startup_s']:.2f} s, first look {r['first_look_s']:.2f} s, worker idle CPU "
                          f"{r['idle_cpu_pct']:.2f} %, server {r['server_cpu_pct']:.2f} % (alone {r['server_alone_cpu_pct']:.2f} %), "
                          f"queries {r['idle_queries']}, claims ms {[fmt(x) for x in r['claim_ms']]}", flush=True)
        wall = perf_counter() - t_all
        env['loadavg_start'], env['loadavg_end'] = load0, [round(x, 2) for x in os.getloadavg()]
        write_report(a.out, cmd, env, a, idle, rec, pg_rows, setup, wall)
        print(f"wrote {a.out / 'scheduler.md'} and {a.out / 'scheduler.json'} ({wall:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
