"""Where a job's time goes on SQLite's in-process paths (issue 14's item 2), sampled.

Runs `--jobs` no-op jobs the way a route does (`submit`, then the `bg_task` awaited), a sync and an async task, and
then drains as many async jobs with the in-app scheduler (written first, then `Scheduler(host)` with its defaults
runs them), and submits as many async jobs one at a time to a tenant that scheduler serves, under pyinstrument, and adds up the samples by what was running: SQLite itself, fh-saas's Python (by
module), the event loop waiting (a sync task's thread hop, a checkpoint), and the rest. Writes
bench/results/profile_sqlite.md; no assertion, it reports.

    .venv/bin/python bench/profile_sqlite.py [--jobs 4000]      (needs pyinstrument: the `bench` extra)
"""
import argparse, asyncio, shlex, sys, tempfile, time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from pyinstrument import Profiler
from fh_saas.db_host import SqliteHost
from fh_saas.scheduler import Scheduler
from fh_saas.utils_bgtsk import BackgroundTaskManager, JobStore

OUT = Path(__file__).resolve().parent / 'results' / 'profile_sqlite.md'


def noop(): return None
async def anoop(): return None


def kind(f) -> str:
    "What the time of frame `f` (a function, its own time) counts as."
    fn, path = f.function or '', f.file_path_short or ''
    if path == '<built-in>':
        if fn.split('.')[-1] in ('execute', 'fetchall', 'executescript', 'commit', 'close', 'connect'):
            return 'SQLite: the statements (execute, fetchall)'
        if fn.endswith('poll') or fn.endswith('select'): return 'event loop idle: waiting for a job thread or a lock'
        if 'strftime' in fn or 'urandom' in fn or 'fromtimestamp' in fn: return 'stdlib: json, inspect, ids, times'
        return 'other built-ins (locks, dicts, futures)'
    for mod in ('store', 'runner', 'scheduler', 'utils_bgtsk', 'jobs', 'db_host'):
        if path.endswith(f'fh_saas/{mod}.py'): return f'fh-saas Python: {mod}.py'
    if 'anyio' in path: return 'anyio: cancel scopes'
    if any(m in path for m in ('inspect', 'json', 'uuid', 'dataclasses', 'typing')): return 'stdlib: json, inspect, ids, times'
    if any(m in path for m in ('asyncio', 'concurrent', 'threading', 'selectors', 'contextlib', 'contextvars')):
        return 'asyncio, threads, context managers'
    return 'other Python'


def walk(f, out: Counter):
    "Add each frame's own time (pyinstrument keeps it in a synthetic `[self]` child) to what it counts as."
    if f.is_synthetic_leaf: out[kind(f.parent)] += f.time; return
    if not f.children: out[kind(f)] += f.time
    for c in f.children: walk(c, out)


async def sample(body):
    "Run `await body()` under pyinstrument: `(seconds by what was running, wall seconds)`."
    p = Profiler(interval=0.0001, async_mode='disabled'); p.start(); t = time.perf_counter()
    try: await body()
    finally: wall = time.perf_counter() - t; p.stop()
    out = Counter(); walk(p.last_session.root_frame(), out)
    return out, wall


def profile(fn, n):
    "Profile `n` no-op jobs run as a route does: `submit`, then the `bg_task` awaited."
    mgr = BackgroundTaskManager(JobStore(f"sqlite:///{tempfile.mkdtemp()}/t.db"))
    async def main():
        for _ in range(20): await mgr.submit('noop', fn)[1]()
        async def body():
            for _, bg in [mgr.submit('noop', fn) for _ in range(n)]: await bg()
        return await sample(body)
    return asyncio.run(main())


def drained(n):
    "Profile the in-app scheduler draining `n` async no-op jobs written before it started."
    host = SqliteHost(tempfile.mkdtemp()); host.create('t')
    mgr = BackgroundTaskManager(host.url('t'))
    for _ in range(n): mgr.submit('noop', anoop)  # their `bg_task`s are never run: the scheduler finds the rows
    async def body():
        s = Scheduler(host)
        async with s.running():
            while s.stats['runs'] < n: await asyncio.sleep(0.001)
    return asyncio.run(sample(body))


def served(n):
    "Profile `n` async no-op jobs submitted one at a time to a tenant the in-app scheduler serves, each `bg_task` awaited and the loop let run once, as between requests."
    host = SqliteHost(tempfile.mkdtemp()); host.create('t')
    mgr = BackgroundTaskManager(host.url('t'))
    async def main():
        s = Scheduler(host)
        async with s.running():
            for _ in range(20): await mgr.submit('noop', anoop)[1](); await asyncio.sleep(0)
            while s.stats['runs'] < 20: await asyncio.sleep(0.001)
            async def body():
                for _ in range(n): await mgr.submit('noop', anoop)[1](); await asyncio.sleep(0)
                while s.stats['runs'] < n + 20: await asyncio.sleep(0.001)
            return await sample(body)
    return asyncio.run(main())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0]); ap.add_argument('--jobs', type=int, default=4000)
    a = ap.parse_args()
    lines = [f"# Where a job's time goes on SQLite's in-process paths\n",
             f"Produced by `{shlex.join([sys.executable.split('/')[-3] + '/bin/python' if '.venv' in sys.executable else 'python', *sys.argv])}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}: {a.jobs:,} no-op jobs, `submit` then the `bg_task` awaited, "
             "as many async jobs written first, then drained by the in-app scheduler (`Scheduler(host)`, its defaults), "
             "and as many submitted one at a time to a tenant that scheduler serves (each `bg_task` awaited, the loop let run once), "
             "sampled every 0.1 ms by pyinstrument (which slows Python down, so read the shares, not the totals).\n"]
    for label, run in (('sync task, `bg_task` path', lambda: profile(noop, a.jobs)),
                       ('async task, `bg_task` path', lambda: profile(anoop, a.jobs)),
                       ('async task, drained by the in-app scheduler', lambda: drained(a.jobs)),
                       ('async task, submitted one at a time to the in-app scheduler', lambda: served(a.jobs))):
        out, wall = run()
        tot = sum(out.values())
        lines += [f"\n## {label}: {wall / a.jobs * 1e6:,.0f} us per job under the profiler\n",
                  "| where | us per job | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v / a.jobs * 1e6:,.0f} | {v / tot:.0%} |" for k, v in out.most_common()]
    OUT.write_text('\n'.join(lines) + '\n'); print('\n'.join(lines))


if __name__ == '__main__': main()
