"""Scheduler benchmark: idle cost of watching many tenant databases, and recovery of a crashed process's jobs.

Every measurement runs in a fresh child process (`python bench/bench_scheduler.py --child ...`, PYTHONPATH=bench),
so CPU time and RSS are the scheduler's own:
  1. idle: N tenant databases (each made by `SqliteHost.create` + `BackgroundTaskManager(url)`, holding one
     completed job), `Scheduler(host, poll=P)` idle for D seconds after its startup scan. Reports the startup scan
     time, CPU % of one core, CPU ms per poll, RSS, `sched.stats` and how many databases each poll queried.
  2. recovery: 100 tenants x 10 no-op jobs; 500 left `running` under a lease held by a dead worker, 500 `pending`
     (variant "dead pid": lease 30 s ahead, worker `<this host>:999999999:dead`; variant "expired lease": lease 60 s
     past, worker on another host). Reports, from the scheduler's start, time to the first and to the last completion.
No timing assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_scheduler.py [--tenants 1000] [--idle-seconds 30] [--quick]
"""
import argparse, asyncio, json, os, platform, resource, shlex, shutil, socket, sqlite3, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'
DEAD_WORKER = f"{socket.gethostname()}:999999999:dead"
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


# ---------------------------------------------------------------- child: idle
def child_idle(a):
    import anyio
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    host = SqliteHost(a.dir)
    sched = Scheduler(host, poll=a.poll)
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
        cpu0, t0 = cpu_s(), perf_counter()
        async with sched.running():
            t1, cpu1 = perf_counter(), cpu_s()
            stats1, loops1, nscan1, mem1 = dict(sched.stats), loops[0], len(scans), rss_kb()
            await anyio.sleep(a.seconds)
            t2, cpu2 = perf_counter(), cpu_s()
            stats2, loops2, mem2, fds = dict(sched.stats), loops[0], rss_kb(), n_fds()
        breakdown = scan_breakdown(host, sched)
        idle = [s for s in scans[nscan1:] if s['at'] <= t2]
        d = lambda k: stats2[k] - stats1[k]
        return dict(
            tenants=len(host.tenants()), poll=a.poll, idle_s=t2 - t1,
            startup_s=t1 - t0, startup_cpu_s=cpu1 - cpu0, startup_scan=scans[0],
            idle_cpu_s=cpu2 - cpu1, idle_cpu_pct=100 * (cpu2 - cpu1) / (t2 - t1),
            polls=len(idle), loop_wakeups=loops2 - loops1,
            cpu_ms_per_poll=1e3 * (cpu2 - cpu1) / max(1, len(idle)),
            scan_cpu_ms=[round(s['cpu_ms'], 3) for s in idle], scan_wall_ms=[round(s['wall_ms'], 3) for s in idle],
            queried_per_poll=[s['queried'] for s in idle],
            stats_after_startup=stats1, stats_end=stats2,
            idle_scans=d('scans'), idle_queries=d('queries'),
            rss_kb_start=mem1['VmRSS'], rss_kb=mem2['VmRSS'], rss_hwm_kb=mem2['VmHWM'], threads=mem2['Threads'],
            open_fds=fds, scan_breakdown_ms=breakdown)
    return anyio.run(main)


def scan_breakdown(host, sched, reps=5):
    "Where one idle poll's time goes: the parts `Scheduler.scan` does for every tenant, each timed alone (median ms)."
    from fh_saas.utils_bgtsk import store_for
    from fh_saas.scheduler import _file_sig
    ts = host.tenants(); urls = [host.url(t) for t in ts]; stores = [store_for(u) for u in urls]
    parts = {'host.tenants()': lambda: host.tenants(), 'host.url(t) for all': lambda: [host.url(t) for t in ts],
             'store_for(url) for all': lambda: [store_for(u) for u in urls],
             '_file_sig(st) for all (2 stats each)': lambda: [_file_sig(s) for s in stores],
             'whole scan() (idle)': lambda: sched.scan()}
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

def write_report(out, cmd, env, a, idle, rec, setup, wall):
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    data = dict(command=cmd, date=now, machine=env, options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items() if k not in ("child", "dir", "poll", "seconds", "expect", "concurrency", "timeout")}, setup_s=setup, wall_s=wall, idle=idle, recovery=rec)
    (out / 'scheduler.json').write_text(json.dumps(data, indent=1))
    L = [f"# fh-saas scheduler benchmark\n",
         f"Produced by `{cmd}` on {now} ({wall:.0f} s).\n",
         f"Machine: Python {env['python']}, SQLite {env['sqlite']}, {env['cores']} cores ({env['usable_cores']} usable), "
         f"{env['platform']}; fh-saas {env['fh_saas']}, anyio {env['anyio']}; code at commit {env['git_commit']}"
         f"{' (fh_saas/ has uncommitted changes)' if env['fh_saas_dirty'] else ''}. Load average (1/5/15 min) at start {env['loadavg_start']}, at end {env['loadavg_end']}.\n",
         "Every row is one fresh child process (`python bench/bench_scheduler.py --child ...`); CPU is "
         "`getrusage(RUSAGE_SELF)` user+sys inside the child. Raw figures, including every poll's scan: `scheduler.json`.\n",
         "## 1. Idle cost\n",
         f"Tenants made with `SqliteHost.create` + `BackgroundTaskManager(url)`, each holding one completed job. "
         f"`Scheduler(host, poll=P)`; `async with sched.running(): await anyio.sleep({a.idle_seconds})`. "
         "*Startup scan* = time for `running()` to enter (the forced scan of every tenant). The idle window starts "
         "after it. *CPU/poll* = idle CPU / polls in the window; *scan CPU* = median thread CPU of one poll's "
         "`scan()`. *queried* = databases queried during the window (`stats['queries']` delta), then per poll.\n",
         "| tenants | poll s | startup scan s | idle CPU % of 1 core | CPU ms / poll | scan CPU ms (median) | "
         "scan wall ms (median) | polls | loop wake-ups | queried in window | queried per poll | RSS MB | fds | stats at end |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in idle:
        qp = r['queried_per_poll']
        qps = ', '.join(map(str, qp[:4])) + (f", … ({len(qp)})" if len(qp) > 4 else '')
        st = r['stats_end']
        L.append(f"| {r['tenants']:,} | {r['poll']} | {r['startup_s']:.2f} | {r['idle_cpu_pct']:.2f} | "
                 f"{r['cpu_ms_per_poll']:.1f} | {fmt(median(r['scan_cpu_ms']))} | {fmt(median(r['scan_wall_ms']))} | "
                 f"{r['polls']} | {r['loop_wakeups']} | {r['idle_queries']:,} | {qps} | {r['rss_kb'] / 1024:.1f} | "
                 f"{r['open_fds']} | scans={st['scans']} queries={st['queries']:,} runs={st['runs']} |")
    big = max(idle, key=lambda r: r['tenants'])
    L += ["", f"Where an idle poll's time goes with {big['tenants']:,} tenants (each part timed alone in the child after "
          "its window, median of 5, ms):\n", "| part | ms |", "|---|---:|"]
    L += [f"| `{k}` | {v} |" for k, v in big['scan_breakdown_ms'].items()]
    L += ["", "## 2. Recovery at startup\n",
          f"{a.rec_tenants} tenants x {a.rec_per} jobs (task: `bench_scheduler:noop`, a no-op sync function). Half "
          "left `running` as by a crashed process, half `pending`. *dead pid*: worker "
          f"`{DEAD_WORKER}`, lease 30 s in the future (only the dead-pid check frees it early). *expired lease*: "
          f"worker `{OTHER_WORKER}`, lease 60 s in the past. Fresh child runs `Scheduler(host, concurrency=8)`; times from "
          "just before `running()` is entered; completions counted in the child as each scheduled run returns, "
          "checked against the databases after.\n",
          f"Each variant is run {a.reps} times on fresh databases; the row is the run with the median *all done* "
          "time, *range* gives min-max of *all done* over the runs.\n",
          "| variant | jobs | startup scan s | first job done s | all done s | all done range s | jobs/s (from start) "
          "| jobs/s (first→last) | CPU % | rescued | final status counts |",
          "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rec:
        L.append(f"| {r['variant']} | {r['jobs']:,} | {r['startup_scan_s']:.3f} | {fmt(r['first_done_s'], 3)} | "
                 f"{fmt(r['all_done_s'], 3)} | {rng(r['runs'])} | {fmt(r['jobs_per_s'], 0)} | {fmt(r['jobs_per_s_after_first'], 0)} | "
                 f"{r['cpu_pct']:.0f} | {r['stats']['rescued']} | {json.dumps(r['final_counts'])} |")
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
    ap.add_argument('--tenants', type=int, default=1000, help='tenants in the large idle runs')
    ap.add_argument('--idle-seconds', type=float, default=30.0, help='idle window measured per run')
    ap.add_argument('--quick', action='store_true', help='small and fast: 200/20 tenants, 5 s idle, 20x10 jobs')
    ap.add_argument('--reps', type=int, default=3, help='repetitions of each recovery run (median reported)')
    ap.add_argument('--out', type=Path, default=RESULTS, help='directory for scheduler.md and scheduler.json')
    # child mode (internal)
    ap.add_argument('--child', choices=['idle', 'recover'], help=argparse.SUPPRESS)
    ap.add_argument('--dir', help=argparse.SUPPRESS)
    ap.add_argument('--poll', type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument('--seconds', type=float, default=30.0, help=argparse.SUPPRESS)
    ap.add_argument('--expect', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--concurrency', type=int, default=8, help=argparse.SUPPRESS)
    ap.add_argument('--timeout', type=float, default=90.0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        r = child_idle(a) if a.child == 'idle' else child_recover(a)
        print(json.dumps(r)); return

    if a.quick: a.tenants, a.idle_seconds = min(a.tenants, 200), min(a.idle_seconds, 5.0)
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
    try:
        big, little = tmp / f'idle{a.tenants}', tmp / f'idle{small}'
        t = perf_counter(); make_idle_tenants(big, a.tenants); setup[f'{a.tenants} idle tenants'] = perf_counter() - t
        t = perf_counter(); make_idle_tenants(little, small); setup[f'{small} idle tenants'] = perf_counter() - t
        idle = []
        for d, n, poll in ((big, a.tenants, 2.0), (big, a.tenants, 0.5), (little, small, 2.0), (little, small, 0.5)):
            print(f"idle: {n} tenants, poll={poll}, {a.idle_seconds:g} s ...", flush=True)
            r = run_child('idle', dir=d, poll=poll, seconds=a.idle_seconds)
            idle.append(r)
            print(f"  startup {r['startup_s']:.2f} s, idle CPU {r['idle_cpu_pct']:.2f} % ({r['cpu_ms_per_poll']:.1f} ms/poll,"
                  f" {r['polls']} polls, {r['loop_wakeups']} wake-ups), queried {r['idle_queries']} "
                  f"{r['queried_per_poll'][:5]}, RSS {r['rss_kb'] / 1024:.1f} MB, fds {r['open_fds']}", flush=True)
        rec = []
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
        wall = perf_counter() - t_all
        env['loadavg_start'], env['loadavg_end'] = load0, [round(x, 2) for x in os.getloadavg()]
        write_report(a.out, cmd, env, a, idle, rec, setup, wall)
        print(f"wrote {a.out / 'scheduler.md'} and {a.out / 'scheduler.json'} ({wall:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
