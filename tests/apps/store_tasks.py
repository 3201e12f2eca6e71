"""Task functions and helper processes for tests/test_faults_store.py (store faults: locks, files, WAL, identity).

Each task execution is logged as one line (O_APPEND) in the file named by its `log` argument:
`<job id> <attempt> <pid> <start time.time()> <end time.time()>` (end is written as a second `end` line).

Run as a script for the helper processes:
    python -m apps.store_tasks lock DB SECONDS READY RELEASED   hold DB's write lock (BEGIN IMMEDIATE) for SECONDS
    python -m apps.store_tasks nsrun URL PID LOG STARTED STOP   (inside `unshare --pid`) submit and run one `hold` job
    python -m apps.store_tasks fill DIR N LOG                   N tenants t0000.. each with one pending `record` job
    python -m apps.store_tasks fds DIR N LOG OUT DEADLINE       run a Scheduler under `ulimit -n 1024` until N ran
"""
import asyncio, json, os, sys, time
from pathlib import Path
from fh_saas.utils_bgtsk import current_job


def logline(log: str, what: str):
    "Append one line to `log` (O_APPEND: lines of concurrent writers never mix)."
    j = current_job()
    line = f"\n{j.id if j else '-'} {j.attempt if j else 0} {os.getpid()} {what} {time.time():.6f}\n"  # its own line even after a torn one
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, line.encode())
    finally: os.close(fd)


def _wait_file(p: str, limit: float) -> bool:
    end = time.time() + limit
    while time.time() < end:
        if os.path.exists(p): return True
        time.sleep(0.02)
    return False


def noop(i: int = 0):
    "Does nothing (the WAL burst, the 1,000 tenants)."
    return i


def record(log: str, i: int = 0):
    "Logs its execution, returns `i`."
    logline(log, 'start'); logline(log, 'end')
    return i


def steps(log: str, n: int = 5, every: float = 0.05):
    "Sync: reports progress `n` times, `every` s apart (each report may write the job row)."
    logline(log, 'start')
    ctx = current_job()
    for k in range(n):
        ctx.progress((k + 1) / n, f"step {k + 1}")
        time.sleep(every)
    logline(log, 'end')
    return n


def finish_when(log: str, ready: str, limit: float = 30.0):
    "Sync: logs its start, waits (at most `limit` s) for the file `ready`, returns at once after it appears."
    logline(log, 'start')
    seen = _wait_file(ready, limit)
    logline(log, 'end')
    return {'saw_lock': seen, 'pid': os.getpid()}


async def progress_when(log: str, ready: str, reports: int = 8, every: float = 0.4, limit: float = 30.0):
    "Async: waits for the file `ready` (without blocking the loop), then reports progress `reports` times."
    logline(log, 'start')
    end = time.time() + limit
    while not os.path.exists(ready) and time.time() < end: await asyncio.sleep(0.02)
    ctx = current_job()
    for k in range(reports):
        ctx.progress((k + 1) / reports, f"step {k + 1} of {reports}")
        await asyncio.sleep(every)
    logline(log, 'end')
    return 'done'


def hold(log: str, started: str, stop: str, limit: float = 25.0):
    "Sync: logs its start, writes `started` (with this process's pid), works until the file `stop` appears."
    logline(log, 'start')
    Path(started + ".tmp").write_text(str(os.getpid())); os.replace(started + ".tmp", started)  # whole when it appears: the test reads it at once
    _wait_file(stop, limit)
    logline(log, 'end')
    return {'pid': os.getpid()}


def sleeper(seconds: float = 5.0):
    "Sync: sleeps (a task that overruns its timeout)."
    time.sleep(seconds)
    return seconds


# ---------------------------------------------------------------- helper processes
def _lock(db, seconds, ready, released):
    import sqlite3
    c = sqlite3.connect(db, isolation_level=None, timeout=30)
    c.execute('BEGIN IMMEDIATE')                       # the write lock: every other writer waits or gets SQLITE_BUSY
    Path(ready + '.tmp').write_text(f"{time.time():.6f}"); os.replace(ready + '.tmp', ready)
    time.sleep(float(seconds))
    Path(released + '.tmp').write_text(f"{time.time():.6f}"); os.replace(released + '.tmp', released)
    c.execute('COMMIT'); c.close()


def _nsrun(url, pid, log, started, stop):
    "In a new pid namespace (we are its pid 1): make the next pid `pid`, and run `nsjob` there in a fresh python."
    pid = int(pid)
    if pid:
        with open('/proc/sys/kernel/ns_last_pid', 'w') as f: f.write(str(pid - 1))
    child = os.fork()
    if child == 0:   # exec at once: the job's process imports fh_saas itself, as pid `pid`
        try: os.execv(sys.executable, [sys.executable, '-m', 'apps.store_tasks', 'nsjob', url, log, started, stop])
        finally: os._exit(127)
    _, st = os.waitpid(child, 0)
    sys.exit(os.waitstatus_to_exitcode(st))


def _nsjob(url, log, started, stop):
    "Submit one `hold` job and run it here through its `bg_task` (a manager with a 60 s lease)."
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    from apps.store_tasks import hold       # by its module's name, not __main__'s: any process can import it
    mgr = BackgroundTaskManager(url, lease=60.0)
    job_id, bg = mgr.submit('hold', hold, max_retries=2, log=log, started=started, stop=stop)
    asyncio.run(bg())


def _fill(d, n, log):
    from fh_saas.db_host import SqliteHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    from apps.store_tasks import record     # by its module's name, not __main__'s
    host = SqliteHost(d)
    for k in range(int(n)):
        m = BackgroundTaskManager(host.create(f"t{k:04d}"), run_here=False)
        m.submit('record', record, log=log, i=k)
        close = getattr(m.store, 'close', None)
        if close: close()


def _fds(d, n, log, out, deadline):
    "Under RLIMIT_NOFILE 1024, run a Scheduler until `n` jobs logged `end` or `deadline` s; write figures to `out`."
    import resource, threading, logging
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    errors = []
    class H(logging.Handler):
        def emit(self, r): errors.append(r.getMessage()[:300])
    logging.getLogger('fh_saas').addHandler(H(level=logging.WARNING))
    peak, stop = [0], threading.Event()
    def sample():
        while not stop.is_set():
            try: peak[0] = max(peak[0], len(os.listdir('/proc/self/fd')))
            except OSError: pass
            time.sleep(0.01)
    threading.Thread(target=sample, daemon=True).start()
    from fh_saas.db_host import SqliteHost
    from fh_saas.scheduler import Scheduler
    sched = Scheduler(SqliteHost(d), poll=0.5, concurrency=8, task_modules=['apps.store_tasks'])
    Path(log).touch()
    logf, outf = open(log), open(out, 'w')            # opened before the run: reading them never needs a new fd
    def ran():
        logf.seek(0)
        return sum(1 for l in logf if ' end ' in l)
    async def main():
        async with sched.running():
            end = time.time() + float(deadline)
            while ran() < int(n) and time.time() < end: await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)                   # let the last finishes be written
    t0, crash = time.time(), None
    try: asyncio.run(main())
    except BaseException as e: crash = f"{type(e).__name__}: {e}"[:500]   # reported, not raised: the figures matter
    stop.set()
    try: fds_after = len(os.listdir('/proc/self/fd'))
    except OSError: fds_after = None
    outf.write(json.dumps(dict(ran=ran(), peak_fds=peak[0], seconds=time.time() - t0,
                                         fds_after=fds_after, errors=len(errors), first_errors=errors[:5], crash=crash)))
    outf.close()


if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    dict(lock=_lock, nsrun=_nsrun, nsjob=_nsjob, fill=_fill, fds=_fds)[cmd](*args)
