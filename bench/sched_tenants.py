"""A job's cost on the in-app scheduler as the number of tenants it serves grows.

For each tenant count T: T tenant SQLite files (copies of one that `BackgroundTaskManager` made), a `Scheduler(host)`
with its defaults serving them all, every file looked at once; then 1,000 no-op async jobs are submitted one after
another on one tenant, each `bg_task` awaited and the loop let run once, as between requests. Jobs/s end to end
(first submit -> last outcome written, as the runner's outcome hooks tell it). Each repetition is a fresh child
process; the tenant counts are interleaved; the median and the range are reported. No timing assertions: it
reports, it does not judge.

    .venv/bin/python bench/sched_tenants.py [--tenants 1,1000,5000] [--reps 3]
"""
import argparse, asyncio, json, shutil, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = 1000

async def anoop(): return None

def child(tenants:int):
    from fh_saas.db_host import SqliteHost
    from fh_saas.runner import outcome_hooks
    from fh_saas.scheduler import Scheduler
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    host = SqliteHost(Path(tempfile.mkdtemp()))
    host.create('t0'); BackgroundTaskManager(host.url('t0')).store.close()
    for k in range(1, tenants): shutil.copyfile(host.path('t0'), host.path(f"t{k}"))
    done = {}
    outcome_hooks.append(lambda st, row, outcome, started, ended: done.__setitem__(row['id'], ended))
    async def main():
        sched = Scheduler(host, task_modules=[__name__])
        async with sched.running():
            while sched.unseen: await asyncio.sleep(0.05)
            m = BackgroundTaskManager(host.url('t0'))
            for _ in range(20): await m.submit('anoop', anoop)[1](); await asyncio.sleep(0)
            await asyncio.sleep(0.2)
            t, ids = time.time(), []
            for _ in range(JOBS):
                i, bg = m.submit('anoop', anoop); await bg(); await asyncio.sleep(0); ids.append(i)
            while not all(i in done for i in ids): await asyncio.sleep(0.001)
            return JOBS / (max(done[i] for i in ids) - t)
    print(json.dumps(asyncio.run(main())))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tenants', default='1,1000,5000', help='tenant counts, comma-separated')
    ap.add_argument('--reps', type=int, default=3, help='repetitions of each count')
    ap.add_argument('--child', type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None: return child(a.child)
    counts, got = [int(x) for x in a.tenants.split(',')], {}
    for _ in range(a.reps):
        for n in counts:
            out = subprocess.run([sys.executable, __file__, '--child', str(n)], capture_output=True, text=True, check=True)
            got.setdefault(n, []).append(json.loads(out.stdout.splitlines()[-1]))
    rows = [f"| {n:,} | {statistics.median(v):,.0f} | {min(v):,.0f}-{max(v):,.0f} |" for n, v in got.items()]
    print(f"# The in-app scheduler's cost per job as the tenants it serves grow\n\nProduced by "
          f"`.venv/bin/python bench/sched_tenants.py --tenants {a.tenants} --reps {a.reps}` on "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {JOBS:,} no-op async jobs submitted one at a time on one "
          "tenant while the scheduler serves them all (see the script's docstring).\n\n"
          "| tenants served | end to end jobs/s | range |\n|---:|---:|---|\n" + '\n'.join(rows))

if __name__ == '__main__': main()
