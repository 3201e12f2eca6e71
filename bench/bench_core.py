"""Core benchmark: fh-saas `BackgroundTaskManager` vs raw stdlib `sqlite3` doing the same three committed writes per job.

Measures, at WAL + synchronous=NORMAL and WAL + synchronous=FULL, on fresh temp SQLite files:
  1. throughput: N no-op jobs submitted, then run by awaiting each `bg_task` in one event loop, sequentially;
  2. latency: 200 jobs 5 ms apart, submit -> completed (p50, p99).
Every figure is the median over `--reps` repetitions. No timing assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_core.py [--jobs 2000] [--reps 3] [--lat-jobs 200]
"""
import argparse, asyncio, json, os, platform, shlex, shutil, sqlite3, statistics, sys, tempfile, time, uuid
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from time import perf_counter

from fh_saas.utils_bgtsk import BackgroundTaskManager, JobStore, SCHEMA

RESULTS = Path(__file__).resolve().parent / 'results'
WARMUP = 20  # jobs run before each timed phase (thread pool, statement cache), not counted


def noop(): return None
async def anoop(): return None


def pct(xs, q):
    "The q-th percentile (0-100) of xs, nearest-rank."
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


# ---------------------------------------------------------------- fh-saas
def fh_manager(path, sync):
    return BackgroundTaskManager(JobStore(f"sqlite:///{path}", synchronous=sync))


def fh_throughput(path, sync, n, fn=noop):
    mgr = fh_manager(path, sync)
    warm = [mgr.submit('noop', fn)[1] for _ in range(WARMUP)]
    t = perf_counter()
    subs = [mgr.submit('noop', fn) for _ in range(n)]
    t_submit = perf_counter() - t

    async def run_all():
        for bg in warm: await bg()
        t = perf_counter()
        for _, bg in subs: await bg()
        return perf_counter() - t
    t_run = asyncio.run(run_all())
    done = mgr.count_jobs(status='completed')
    assert done == n + WARMUP, f"only {done} of {n + WARMUP} jobs completed"
    mgr.store.close()
    return t_submit, t_run


def fh_latency(path, sync, n, fn=noop):
    mgr = fh_manager(path, sync)

    async def go():
        for _ in range(WARMUP): await mgr.submit('noop', fn)[1]()
        lats, ids = [], []
        for _ in range(n):
            t0 = perf_counter()
            jid, bg = mgr.submit('noop', fn)
            await bg()
            lats.append(perf_counter() - t0); ids.append(jid)
            await asyncio.sleep(0.005)
        return lats, ids
    lats, ids = asyncio.run(go())
    bad = [j for j in ids if mgr.get_job(j).status != 'completed']  # every one, outside the timing
    assert not bad, f"{len(bad)} latency jobs not completed"
    mgr.store.close()
    return lats


# ---------------------------------------------------------------- raw sqlite3 baseline
# Same table (fh-saas's schema, so the same indexes are maintained), same three committed writes per job.
INS = ("INSERT INTO tenant_jobs (id, job_type, status, payload, max_retries, created_at, run_at, updated_at) "
       "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)")
CLAIM = ("UPDATE tenant_jobs SET status = 'running', attempt = attempt + 1, started_at = ?, lease_until = ?, "
         "worker = ?, updated_at = ? WHERE id = ? AND status = 'pending'")
DONE = ("UPDATE tenant_jobs SET status = 'completed', result = ?, completed_at = ?, lease_until = NULL, "
        "updated_at = ? WHERE id = ? AND status = 'running'")


def raw_conn(path, sync):
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    c.execute('PRAGMA journal_mode=WAL'); c.execute(f'PRAGMA synchronous={sync}')
    c.executescript(SCHEMA)
    return c


def now_s(t): return datetime.fromtimestamp(t, timezone.utc).isoformat()


def raw_insert(c):
    jid, t = uuid.uuid4().hex, time.time()
    ts = now_s(t)
    c.execute(INS, (jid, 'noop', json.dumps({}), 3, ts, t, ts))
    return jid


def raw_run(c, jid):
    t = time.time(); ts = now_s(t)
    assert c.execute(CLAIM, (ts, t + 30, 'bench', ts, jid)).rowcount == 1
    res = noop()
    t = time.time(); ts = now_s(t)
    assert c.execute(DONE, (json.dumps(res), ts, ts, jid)).rowcount == 1


def raw_throughput(path, sync, n):
    c = raw_conn(path, sync)
    for _ in range(WARMUP): raw_run(c, raw_insert(c))
    t = perf_counter()
    ids = [raw_insert(c) for _ in range(n)]
    t_submit = perf_counter() - t

    async def run_all():  # the same event loop setting as fh-saas, run inline
        t = perf_counter()
        for j in ids: raw_run(c, j)
        return perf_counter() - t
    t_run = asyncio.run(run_all())
    done = c.execute("SELECT COUNT(*) FROM tenant_jobs WHERE status = 'completed'").fetchone()[0]
    assert done == n + WARMUP
    c.close()
    return t_submit, t_run


def raw_latency(path, sync, n):
    c = raw_conn(path, sync)

    async def go():
        for _ in range(WARMUP): raw_run(c, raw_insert(c))
        lats, ids = [], []
        for _ in range(n):
            t0 = perf_counter()
            j = raw_insert(c); raw_run(c, j)
            lats.append(perf_counter() - t0); ids.append(j)
            await asyncio.sleep(0.005)
        return lats, ids
    lats, ids = asyncio.run(go())
    st = c.execute(f"SELECT COUNT(*) FROM tenant_jobs WHERE status = 'completed' AND id IN "
                   f"({','.join('?' * len(ids))})", ids).fetchone()[0]
    assert st == n
    c.close()
    return lats


# ---------------------------------------------------------------- driver
from functools import partial
# fh-saas runs a sync task in a job thread (one hop from the event loop per attempt); an async task on the loop.
IMPLS = {'fh-saas, sync task': (fh_throughput, fh_latency),
         'fh-saas, async task': (partial(fh_throughput, fn=anoop), partial(fh_latency, fn=anoop)),
         'raw sqlite3': (raw_throughput, raw_latency)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=2000, help='jobs in the throughput run')
    ap.add_argument('--reps', type=int, default=3, help='repetitions; every figure is their median')
    ap.add_argument('--lat-jobs', type=int, default=200, help='jobs in the latency run (5 ms apart)')
    ap.add_argument('--out', type=Path, default=RESULTS, help='directory for core.md and core.json')
    a = ap.parse_args()
    cmd = shlex.join([os.path.relpath(sys.executable), os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    env = dict(python=platform.python_version(), sqlite=sqlite3.sqlite_version, cores=os.cpu_count(),
               usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
               platform=platform.platform(), fh_saas=version('fh-saas'), anyio=version('anyio'),
               starlette=version('starlette'))
    print(f"Python {env['python']}, SQLite {env['sqlite']}, {env['cores']} cores "
          f"({env['usable_cores']} usable), {env['platform']}")
    print(f"fh-saas {env['fh_saas']}, anyio {env['anyio']}, starlette {env['starlette']}")
    print(f"jobs={a.jobs} lat-jobs={a.lat_jobs} reps={a.reps}\n")

    tmp = Path(tempfile.mkdtemp(prefix='fhsaas-bench-'))
    raw, t_all = {}, perf_counter()
    try:
        for sync in ('NORMAL', 'FULL'):
            for name, (thr, lat) in IMPLS.items():
                key = f"{name} @ {sync}"
                reps = []
                for r in range(a.reps):
                    tag = name.replace(' ', '').replace(',', '-')
                    ts, tr = thr(tmp / f"{tag}-{sync}-thr-{r}.db", sync, a.jobs)
                    lats = lat(tmp / f"{tag}-{sync}-lat-{r}.db", sync, a.lat_jobs)
                    reps.append(dict(submit_s=ts, run_s=tr, jobs_per_s=a.jobs / (ts + tr), submit_per_s=a.jobs / ts,
                                     run_per_s=a.jobs / tr, p50_ms=pct(lats, 50) * 1e3, p99_ms=pct(lats, 99) * 1e3,
                                     lat_mean_ms=statistics.fmean(lats) * 1e3, lat_max_ms=max(lats) * 1e3))
                med = {k: statistics.median(x[k] for x in reps) for k in reps[0]}
                raw[key] = dict(median=med, reps=reps)
                print(f"{key:30} {med['jobs_per_s']:8.0f} jobs/s (submit {med['submit_per_s']:.0f}/s, "
                      f"run {med['run_per_s']:.0f}/s)  p50 {med['p50_ms']:.3f} ms  p99 {med['p99_ms']:.3f} ms")
    finally: shutil.rmtree(tmp, ignore_errors=True)
    elapsed = perf_counter() - t_all

    rows = ['| implementation | durability | jobs/s | % of raw | submit/s | run/s | p50 ms | p99 ms |',
            '|---|---|---:|---:|---:|---:|---:|---:|']
    for sync in ('NORMAL', 'FULL'):
        base = raw[f"raw sqlite3 @ {sync}"]['median']['jobs_per_s']
        for name in IMPLS:
            m = raw[f"{name} @ {sync}"]['median']
            rows.append(f"| {name} | WAL + {sync} | {m['jobs_per_s']:,.0f} | {100 * m['jobs_per_s'] / base:.0f} % | "
                        f"{m['submit_per_s']:,.0f} | {m['run_per_s']:,.0f} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} |")
    table = '\n'.join(rows)
    date = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    print('\n' + table + f"\n\n({elapsed:.1f} s in all)")

    a.out.mkdir(parents=True, exist_ok=True)
    md = f"""# fh-saas core benchmark

Produced by `{cmd}` on {date} ({elapsed:.0f} s).

Machine: Python {env['python']}, SQLite {env['sqlite']}, {env['cores']} cores ({env['usable_cores']} usable), \
{env['platform']}; fh-saas {env['fh_saas']}, anyio {env['anyio']}, starlette {env['starlette']}.

- **jobs/s**: {a.jobs:,} no-op jobs submitted (`mgr.submit('noop', noop)`; `noop` is `def noop(): return None`
  for "sync task" and `async def` for "async task"), then each `bg_task` awaited in turn in one
  `asyncio.run` loop; jobs/s = jobs / (submit time + run time). Raw sqlite3 does the same three committed writes
  per job (insert pending, update to running `WHERE status='pending'`, update to completed `WHERE status='running'`)
  on the same `tenant_jobs` schema and indexes, autocommit, same journal and synchronous settings.
- **p50 / p99**: {a.lat_jobs} jobs 5 ms apart (`await asyncio.sleep(0.005)`), submit -> completed, one at a time.
- Every figure is the median of {a.reps} repetitions, each on a fresh SQLite file (WAL) in a temp directory;
  {WARMUP} warm-up jobs precede each timed phase. Raw per-repetition numbers: `core.json`.

{table}
"""
    (a.out / 'core.md').write_text(md)
    (a.out / 'core.json').write_text(json.dumps(dict(command=cmd, date=date, elapsed_s=elapsed, env=env,
        params=dict(jobs=a.jobs, reps=a.reps, lat_jobs=a.lat_jobs, warmup=WARMUP), results=raw), indent=2) + '\n')
    print(f"wrote {a.out / 'core.md'} and {a.out / 'core.json'}")


if __name__ == '__main__': main()
