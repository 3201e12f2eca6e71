"""Where a PostgreSQL job's latency goes: the pick-up and the run, and the steps of each in fh-saas's worker.

The harness's latency measurement (no-op jobs submitted 5 ms apart, after 20 warm-up jobs), on the harness's own
`fh_pg` (two `fh-saas-worker` processes) and `fh_pg_min` (fh-saas's statements, one job at a time, one bare
consumer thread), on a fresh server (`tests/pgserver.py`) and a fresh database each time. Each job's time is cut
at the moment its claim was sent, the `started_at` its row records:

  pick-up   submit called -> claim sent: the insert and its NOTIFY, the wake-up, the worker's look at what is due
  run       claim sent -> outcome timed: the claim's round trip, the task, the time up to its end's timestamp
  total     submit called -> outcome timed, as the harness's p50 and p99

In `fh_pg` the workers also import `systems.pg_probe`, which notes four moments of each job (three short appends to
a file a job), and its run splits further:

  wake-up      submit called -> claim sent: the pick-up again
  claim        the claim statement, sent and answered, timed in the worker's I/O thread
  hand-back    claim answered -> the event loop starts the job's task
  start        the task started -> its body begins (the runner's slot, context and lease)
  end          the body began -> outcome timed (the no-op, and the runner's outcome)

The two systems in turn, each repetition in a fresh worker set; the median of the repetitions' percentiles.
Writes bench/results/pg_latency_split.md; no assertion, it reports.

    .venv/bin/python bench/pg_latency_split.py [--jobs 400] [--reps 5]
"""
import argparse, asyncio, os, shlex, statistics, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / 'results' / 'pg_latency_split.md'
sys.path[:0] = [str(BENCH), str(BENCH.parent / 'tests')]
import harness                           # noqa: E402  (its `fresh` database and its `noise` check)
from systems import fh_pg, fh_pg_min    # noqa: E402


class Probed(fh_pg.System):
    "`fh_pg`, its workers importing `systems.pg_probe`."
    @staticmethod
    def consumer(url, k):
        a = fh_pg.System.consumer(url, k); a[a.index('--imports') + 1] += ',systems.pg_probe'; return a


SYSTEMS = {'fh_pg': fh_pg, 'fh_pg_min': fh_pg_min}
STEPS = ('claim', 'hand-back', 'start', 'end')
PARTS = ('pick-up', 'run', 'total')


pct = harness.pct  # nearest rank, as the harness


def steady(n) -> str:
    return f"{100 * n['slow_share']:.1f} %"


async def one(mod, url, n, probe):
    "Latency of `n` jobs 5 ms apart on system `mod`: {part: (p50, p99)} in ms."
    if mod is fh_pg: Path(probe).unlink(missing_ok=True); os.environ['PG_PROBE'] = probe
    s = Probed() if mod is fh_pg else mod.System(); await s.setup(url); await s.start()
    try:
        await s.done([await s.submit() for _ in range(harness.WARMUP)])
        subs = []
        for _ in range(n):
            t = time.time(); subs.append((await s.submit(), t)); await asyncio.sleep(harness.GAP)
        done = await s.done([k for k, _ in subs])
    finally: await s.stop()
    ms = {'pick-up': [1e3 * (done[k][0] - t) for k, t in subs], 'run': [1e3 * (done[k][1] - done[k][0]) for k, _ in subs],
          'total': [1e3 * (done[k][1] - t) for k, t in subs]}
    if mod is fh_pg:
        ev = {}
        for line in Path(probe).read_text().splitlines():
            what, jid, *ts = line.split(); ev.setdefault(jid, {})[what] = [float(t) for t in ts]
        for p in STEPS: ms[p] = []
        for k, _ in subs:
            (_, t0, t1), (sp,), (tk,) = ev[k]['claim'], ev[k]['spawn'], ev[k]['task']
            for p, v in zip(STEPS, (t1 - t0, sp - t1, tk - sp, done[k][1] - tk)): ms[p].append(1e3 * v)
    return {p: (pct(v, 50), pct(v, 99)) for p, v in ms.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=400, help='jobs per measurement (default 400)')
    ap.add_argument('--reps', type=int, default=5, help='repetitions; every figure is their median')
    a = ap.parse_args()
    from pgserver import PgServer
    noise0, t0 = harness.noise(10.0), time.monotonic()
    pg, runs = PgServer().start(), {s: [] for s in SYSTEMS}
    tmp = tempfile.TemporaryDirectory(prefix='pg-probe-'); probe = os.path.join(tmp.name, 'probe.log')
    try:
        for r in range(a.reps):
            for name, mod in SYSTEMS.items():
                runs[name].append(x := asyncio.run(one(mod, harness.fresh(mod, pg.url, f'split{r}{name}'), a.jobs, probe)))
                print(f"rep {r + 1}/{a.reps} {name:10} " + ', '.join(f"{p} {x[p][0]:.2f}/{x[p][1]:.2f}" for p in PARTS), flush=True)
    finally: pg.close()
    noise1 = harness.noise(10.0)
    med = lambda name, p, i: statistics.median(x[p][i] for x in runs[name])
    lines = [f"# Where a PostgreSQL job's latency goes", '',
             f"Produced by `{shlex.join(['.venv/bin/python', 'bench/pg_latency_split.py'] + sys.argv[1:])}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC ({time.monotonic() - t0:.0f} s), {os.cpu_count()} cores; "
             f"{a.jobs} no-op jobs 5 ms apart per repetition, {a.reps} repetitions, the median of each figure. "
             f"How steady the machine was (`bench/noise.py`, before / after): {steady(noise0)} / {steady(noise1)} of the time "
             f"in pieces running {harness.SLOW} times slower than the median piece or more.", '',
             '| system | pick-up p50 | pick-up p99 | run p50 | run p99 | total p50 | total p99 | total p99 of each repetition |',
             '|---|---:|---:|---:|---:|---:|---:|---|']
    for name in SYSTEMS:
        each = ', '.join(f"{x['total'][1]:.1f}" for x in runs[name])
        lines.append(f"| `{name}` | " + ' | '.join(f"{med(name, p, i):.2f}" for p in PARTS for i in (0, 1)) + f" | {each} |")
    lines += ['', "fh-saas's worker, step by step (`fh_pg`, from the probe; p50 / p99 in ms):", '',
              '| ' + ' | '.join(PARTS[:1] + STEPS) + ' |', '|' + '---:|' * (1 + len(STEPS))]
    lines.append('| ' + ' | '.join(f"{med('fh_pg', p, 0):.2f} / {med('fh_pg', p, 1):.2f}" for p in PARTS[:1] + STEPS) + ' |')
    tmp.cleanup()
    OUT.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__': main()
