"""Where the in-app scheduler's drain spends its time on SQLite, layer by layer (issue 14's item 2).

The same backlog of no-op async jobs in one tenant file is drained four ways, each adding one layer of fh-saas to
the one before, so the difference between two rows is what that layer costs a job:

  statements  the store's own claim of up to 7 due jobs (`claim_due`) and its grouped finish (`finish_many`), sent
              from the event loop through `JobStore.inline`; each job's no-op awaited in the loop itself
  + tasks     each claimed job in an asyncio task of its own, its end written with the others of its turn
              (`finish_soon`): what any runner that runs jobs concurrently must add
  + runner    each task runs `Runner.run_claimed(row, shield=False)`: its context, its lease held from claim to
              outcome, its function resolved, its outcome classified (retry rules) and told to the hooks
  + scheduler `Scheduler(host)` with its defaults (8 slots, 7 for a tenant alone) claims and runs them: the
              harness's `fh_sqlite_sched`

The three rows below the scheduler's commit twice a round (the claim, then the grouped ends); the scheduler commits
once (its refill writes a round's ends and the next claim together, `JobStore.finish_and_claim`), so its row's
*added* is its own Python net of that saving.

Each row in a fresh process per repetition, the repetitions interleaved, on asyncio's loop and on uvloop (the loop
uvicorn serves a FastHTML app on). Median jobs/s and microseconds a job (wall). Writes
bench/results/layers_sqlite.md; no assertion, it reports.

    .venv/bin/python bench/layers_sqlite.py [--jobs 2000] [--reps 5]
"""
import argparse, asyncio, json, shlex, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / 'results' / 'layers_sqlite.md'
LAYERS = ['statements', '+ tasks', '+ runner', '+ scheduler']
LOOPS = ['asyncio', 'uvloop']


async def anoop(): return None


async def drain(layer: str, n: int) -> float:
    "Seconds to drain `n` jobs written first, with the layers up to `layer`."
    from fh_saas.db_host import SqliteHost
    from fh_saas.runner import Runner, JobThreads, outcome_hooks
    from fh_saas.scheduler import Scheduler
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    host = SqliteHost(tempfile.mkdtemp()); host.create('t')
    mgr = BackgroundTaskManager(host.url('t'))
    for _ in range(n): mgr.submit('noop', anoop)
    st, loop = mgr.store, asyncio.get_running_loop()
    runner = Runner(st, task_modules=[__name__], threads=JobThreads(8))
    def call(fn, *a):  # on the loop with a no-wait write, or waiting for a checkpoint that holds the file
        ok, r = st.inline(fn, *a)
        return r if ok else st.inline(fn, *a, wait=2.0)[1]
    async def ends_with_others(row):
        await anoop()
        try: return await st.finish_soon(row['id'], row['attempt'], 'completed', time.time(), 'null')
        except Exception: return call(st.finish, row['id'], row['attempt'], 'completed', time.time(), 'null')
    t0, done = time.perf_counter(), 0
    if layer == '+ scheduler':
        left = asyncio.Event(); count = [0]
        def told(store, row, outcome, started, ended):
            count[0] += 1
            if count[0] == n: left.set()
        outcome_hooks.append(told)
        try:
            async with Scheduler(host, task_modules=[__name__]).running(): await left.wait()
        finally: outcome_hooks.remove(told)
        return time.perf_counter() - t0
    while done < n:
        rows = call(runner.claim_due, 7)
        if layer == 'statements':
            for _ in rows: await anoop()
            now = time.time()
            call(st.finish_many, [dict(job_id=r['id'], attempt=r['attempt'], status='completed', now=now, result='null') for r in rows])
        elif layer == '+ tasks':
            await asyncio.gather(*[loop.create_task(ends_with_others(r)) for r in rows])
        else:
            runner.threads.take(len(rows))  # the slots a scheduler holds for them: their ends are written together
            await asyncio.gather(*[loop.create_task(runner.run_claimed(r, shield=False)) for r in rows])
            runner.threads.give(len(rows))
        done += len(rows)
    return time.perf_counter() - t0


def child(layer: str, loop: str, n: int):
    from harness import arun  # bench/harness.py, beside this script: how a system runs on either loop
    print(json.dumps(arun(loop, drain(layer, n))))


def interleaved(script: str, layers: list, cols: list, jobs: int, reps: int) -> dict:
    "Each `(layer, col)` run as `script --child LAYER COL` in a fresh process, the repetitions interleaved: median seconds."
    secs = {(l, c): [] for l in layers for c in cols}
    for rep in range(reps):
        for l in layers:
            for c in cols:
                p = subprocess.run([sys.executable, script, '--child', l, c, '--jobs', str(jobs)], capture_output=True,
                                   text=True, timeout=600, cwd=Path(script).parent)
                if p.returncode: sys.exit(f"{l}, {c}: {p.stderr.strip().splitlines()[-1]}")
                secs[(l, c)].append(json.loads(p.stdout.strip().splitlines()[-1]))
                print(f"rep {rep + 1}/{reps} {l:12} {c:11} {jobs / secs[(l, c)][-1]:8,.0f} jobs/s", flush=True)
    return {k: statistics.median(v) for k, v in secs.items()}


def layer_rows(layers: list, cols: list, med: dict, jobs: int) -> list[str]:
    "A table row a layer: for each column its jobs/s, microseconds a job, and what it added to the row above."
    L, prev = [], dict.fromkeys(cols)
    for l in layers:
        cells = []
        for c in cols:
            us = 1e6 * med[(l, c)] / jobs
            cells += [f"{jobs / med[(l, c)]:,.0f}", f"{us:.0f}", '-' if prev[c] is None else f"{us - prev[c]:+.0f}"]
            prev[c] = us
        L.append(f"| {l} | " + ' | '.join(cells) + ' |')
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=2000); ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--child', nargs=2, metavar=('LAYER', 'LOOP'))
    a = ap.parse_args()
    if a.child: return child(a.child[0], a.child[1], a.jobs)
    med = interleaved(__file__, LAYERS, LOOPS, a.jobs, a.reps)
    cmd = shlex.join(['.venv/bin/python', 'bench/layers_sqlite.py'] + sys.argv[1:])
    L = ["# The in-app scheduler's drain on SQLite, layer by layer", "",
         f"Produced by `{cmd}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {a.jobs:,} no-op async jobs written "
         f"first, then drained; median of {a.reps} repetitions, each a fresh process, interleaved. Each row adds one "
         "layer to the row above; *added* is what that layer costs a job (see the script's docstring).", "",
         "| layers | asyncio jobs/s | us a job | added | uvloop jobs/s | us a job | added |", "|---|---:|---:|---:|---:|---:|---:|"]
    L += layer_rows(LAYERS, LOOPS, med, a.jobs)
    OUT.write_text('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
