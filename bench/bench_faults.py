"""Fault benchmark: what stays bounded. Open files with many tenants, WAL size under a burst, threads after timeouts.

Each measurement runs in a fresh child process (`python bench/bench_faults.py --child NAME DIR`, PYTHONPATH = this
checkout and bench/), so the figures are the scheduler's own:
  1. files: 1,000 tenant databases (`SqliteHost.create` + one job each, made by another child), `Scheduler(host,
     poll=0.5)` started, then one no-op job submitted in each of 100 tenants and run. Open files (/proc/self/fd)
     after the startup scan, peak while the jobs run, and once they are done.
  2. wal: 10,000 no-op jobs written to one tenant, then run by `Scheduler(host, poll=0.5)`. Peak size of the -wal
     file (sampled every 10 ms), its size after 5 s idle (the scheduler still running), and the database's size.
  3. threads: 20 jobs of a sync task that sleeps 2 s with `timeout=0.2` (no retries), `Scheduler(host,
     concurrency=8)`. Threads of the process before, at the peak, when all 20 have ended, and 3 s later.
No assertions: it reports. Prints a markdown table and writes it to bench/results/faults.md.

    .venv/bin/python bench/bench_faults.py
"""
import argparse, asyncio, json, os, platform, shutil, sqlite3, subprocess, sys, tempfile, threading, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE/'results'


def noop(i: int = 0): return i                     # children import it as `bench_faults:noop`

def sleeper(seconds: float = 2.0):
    time.sleep(seconds)
    return seconds


def n_fds():
    try: return len(os.listdir('/proc/self/fd'))
    except OSError: return None

def n_threads():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('Threads:'): return int(line.split()[1])

class Peak:
    "Sample `fn()` every `every` s in a thread; `.peak` is the largest value seen."
    def __init__(self, fn, every=0.01):
        self.fn, self.every, self.peak, self._stop = fn, every, 0, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True); self.t.start()
    def _run(self):
        while not self._stop.is_set():
            v = self.fn()
            if v is not None: self.peak = max(self.peak, v)
            time.sleep(self.every)
    def stop(self): self._stop.set(); self.t.join(5); return self.peak


# ---------------------------------------------------------------- children
def child_fill(d):
    "1,000 tenants, each holding one job, marked completed (the scheduler starts with nothing to do)."
    from bench_faults import noop         # by module name, not __main__
    from fh_saas.db_host import SqliteHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    host = SqliteHost(d)
    for k in range(1000):
        m = BackgroundTaskManager(host.create(f"t{k:04d}"), run_here=False)
        m.submit('noop', noop, i=k)
    for k in range(1000):                                   # mark them completed: the scheduler starts idle
        with sqlite3.connect(host.path(f"t{k:04d}")) as c:
            c.execute("UPDATE tenant_jobs SET status = 'completed', completed_at = created_at, attempt = 1")
        c.close()
    return {}

def child_files(d):
    from bench_faults import noop         # by module name, not __main__
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # measure, do not fail: the highest limit allowed
    host = SqliteHost(d)
    out = dict(fds_start=n_fds())
    async def main():
        async with Scheduler(host, poll=0.5, task_modules=['bench_faults']).running():
            out['fds_after_startup_scan'] = n_fds()
            peak = Peak(n_fds)
            mgrs = [BackgroundTaskManager(host.url(f"t{k:04d}")) for k in range(0, 1000, 10)]
            ids = [m.submit('noop', noop, i=k)[0] for k, m in enumerate(mgrs)]
            end = time.time() + 60
            def done(): return sum(m.get_job(i).status == 'completed' for m, i in zip(mgrs, ids))
            while time.time() < end and await asyncio.to_thread(done) < 100: await asyncio.sleep(0.2)
            out['jobs_done'] = await asyncio.to_thread(done)
            await asyncio.sleep(2.0)
            out['fds_peak'], out['fds_after_jobs'] = peak.stop(), n_fds()
    asyncio.run(main())
    return out

def child_wal(d):
    from bench_faults import noop         # by module name, not __main__
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    host = SqliteHost(d)
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    wal = Path(f"{host.path('acme')}-wal")
    def wal_size():
        try: return wal.stat().st_size
        except FileNotFoundError: return 0
    peak = Peak(wal_size)
    t0 = time.time()
    for k in range(10_000): m.submit('noop', noop, i=k)
    out = dict(insert_s=time.time() - t0)
    async def main():
        t1 = time.time()
        async with Scheduler(host, poll=0.5, task_modules=['bench_faults']).running():
            end = time.time() + 120
            while time.time() < end and await asyncio.to_thread(m.count_jobs, None, 'completed') < 10_000:
                await asyncio.sleep(0.2)
            out['run_s'] = time.time() - t1
            out['completed'] = await asyncio.to_thread(m.count_jobs, None, 'completed')
            out['wal_at_end'] = wal_size()
            await asyncio.sleep(5.0)
            out['wal_idle_5s'] = wal_size()
    asyncio.run(main())
    out['wal_peak'] = peak.stop()
    out['db_size'] = host.path('acme').stat().st_size
    return out

def child_threads(d):
    from bench_faults import sleeper
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    host = SqliteHost(d)
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    out = {}
    async def main():
        async with Scheduler(host, concurrency=8, poll=0.5, task_modules=['bench_faults']).running():
            await asyncio.sleep(0.5)
            out['threads_before'] = n_threads()
            peak = Peak(n_threads)
            ids = [m.enqueue('sleeper', sleeper, dict(seconds=2.0), max_retries=0, timeout=0.2)[0] for _ in range(20)]
            t0, end = time.time(), time.time() + 60
            def ended(): return sum(m.get_job(i).status in ('completed', 'failed', 'cancelled') for i in ids)
            while time.time() < end and await asyncio.to_thread(ended) < 20: await asyncio.sleep(0.1)
            out['ended'], out['all_ended_s'] = await asyncio.to_thread(ended), time.time() - t0
            out['threads_when_ended'] = n_threads()
            await asyncio.sleep(3.0)
            out['threads_3s_later'], out['threads_peak'] = n_threads(), peak.stop()
    asyncio.run(main())
    return out

CHILDREN = dict(fill=child_fill, files=child_files, wal=child_wal, threads=child_threads)


# ---------------------------------------------------------------- parent
def run_child(name, d):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    t = time.time()
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--child', name, str(d)], env=env,
                       capture_output=True, text=True, timeout=170)
    if p.returncode != 0:
        print(p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"child {name} failed ({p.returncode})")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r['_s'] = round(time.time() - t, 1)
    return r

def mb(n): return f"{n / 2**20:,.1f} MB" if n is not None else 'n/a'

def main():
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix='fhsaas-faults-'))
    try:
        run_child('fill', tmp/'many')
        files = run_child('files', tmp/'many')
        wal = run_child('wal', tmp/'wal')
        thr = run_child('threads', tmp/'threads')
    finally: shutil.rmtree(tmp, ignore_errors=True)
    try: commit = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                 text=True).stdout.strip() or '?'
    except OSError: commit = '?'
    dirty = subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain', '--', 'fh_saas'], capture_output=True,
                           text=True).stdout.strip()
    rows = [
        ('1,000 tenants, jobs run in 100', 'open files after the startup scan', files['fds_after_startup_scan']),
        ('', 'open files, peak while the 100 jobs ran', files['fds_peak']),
        ('', 'open files after the 100 jobs (2 s later)', files['fds_after_jobs']),
        ('', 'jobs completed', f"{files['jobs_done']} of 100"),
        ('10,000-job burst, one tenant', '-wal file, peak', mb(wal['wal_peak'])),
        ('', '-wal file when the last job completed', mb(wal['wal_at_end'])),
        ('', '-wal file after 5 s idle', mb(wal['wal_idle_5s'])),
        ('', 'database file at the end', mb(wal['db_size'])),
        ('', 'run time (insert / run)', f"{wal['insert_s']:.1f} s / {wal.get('run_s', float('nan')):.1f} s "
                                        f"({wal['completed']:,} completed)"),
        ('20 sync timeouts (2 s task, 0.2 s timeout)', 'threads before', thr['threads_before']),
        ('', 'threads, peak', thr['threads_peak']),
        ('', 'threads when all 20 had ended', f"{thr['threads_when_ended']} ({thr['ended']} ended in "
                                               f"{thr['all_ended_s']:.1f} s)"),
        ('', 'threads 3 s later', thr['threads_3s_later']),
    ]
    md = ["# fh-saas fault benchmark: what stays bounded", "",
          f"Produced by `.venv/bin/python bench/bench_faults.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
          f"({time.time() - t0:.0f} s); code at commit {commit}{' with local changes to fh_saas/' if dirty else ''}.",
          f"Machine: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores, "
          f"{platform.platform()}.", "",
          "Each group is one fresh child process (see the script's docstring for what it does).", "",
          "| scenario | measure | value |", "|---|---|---:|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = '\n'.join(md) + '\n'
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/'faults.md').write_text(text)


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--child', nargs=2, metavar=('NAME', 'DIR'))
    a = ap.parse_args()
    if a.child:
        name, d = a.child
        print(json.dumps(CHILDREN[name](d)))
    else: main()
