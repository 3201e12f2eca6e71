"""An A/B of two fh-saas trees on PostgreSQL: `bench/cpu_pg.py`'s drain (10,000 no-op jobs enqueued in bulk, two
warm workers), the trees interleaved, each given to the workers as `$PYTHONPATH`; the drain and the CPU a job of the
workers and of the server, each run and the medians. For a change that must not cost PostgreSQL anything.

    git archive <commit> fh_saas | tar -x -C /tmp/base        # the tree to compare against
    .venv/bin/python bench/ab_pg.py --reps 4 /tmp/base .      # starts its own PostgreSQL; prints, writes nothing
"""
import argparse, os, statistics, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / 'tests')]
import cpu_pg
from pgserver import PgServer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('trees', nargs='+', help='folders that hold an `fh_saas` package')
    ap.add_argument('--reps', type=int, default=4); ap.add_argument('--jobs', type=int, default=10000)
    ap.add_argument('--workers', type=int, default=2)
    a = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in a.trees]
    res = {t: [] for t in trees}
    os.chdir(HERE)
    with PgServer() as pg:
        for r in range(a.reps):
            for i, t in enumerate(trees):
                os.environ['PYTHONPATH'] = t
                x = cpu_pg.once(cpu_pg.FhSaas(a.workers), pg, a.jobs, f"ab{r}_{i}")
                res[t].append(x)
                print(f"{t:30} drain {x['drain']:6.0f} jobs/s  worker {x['worker_us']:5.1f} us/job  server {x['server_us']:5.1f} us/job", flush=True)
    for t, xs in res.items():
        med = lambda k: statistics.median(x[k] for x in xs)
        print(f"median {t:30} drain {med('drain'):6.0f} jobs/s  worker {med('worker_us'):5.1f} us/job  server {med('server_us'):5.1f} us/job")


if __name__ == '__main__': main()
