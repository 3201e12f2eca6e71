"""The systems `bench/harness.py` measures, one short module each. A module defines:

    LABEL    its name in the tables
    BACKEND  'sqlite': the harness hands it a fresh empty directory; 'pg': the URL of a fresh empty database
    PROCESS  True when its consumer is a separate Python process: its drain is then timed from the first job
             started, so that the process's start-up is not counted
    System   a class whose async methods the harness calls, in this order:
               setup(where)  create the store in `where` (not timed)
               start()       start the consumer; return once it is started
               submit()      enqueue one no-op job and return its key (an in-app path runs it here too, as a
                             route's response would)
               done(keys)    wait until every job of `keys` has completed; `{key: (started or None, completed)}`
                             in epoch seconds, from the system's own records
               stop()        stop the consumer
             and, when PROCESS, an attribute `procs` (or `proc`): its consumer processes, which the harness stops
             (SIGSTOP) and resumes for the drain with the consumers warm; optionally `firsts()`: the time each
             consumer process started its first job of the last `done`, for the start-up skew of the cold drain
or, instead, `async def measure(where, quick) -> dict` for a measurement of its own (`route.py`).
"""
import asyncio, os, subprocess, sys, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent


def spawn(*args, **env):
    "Start `python *args` in the project folder with `systems` (and `$PYTHONPATH`) importable; output to `$BENCH_LOG`."
    path = os.pathsep.join(filter(None, [os.environ.get('PYTHONPATH'), str(BENCH), str(ROOT)]))  # ours first, if set
    # `-P`: `python -m` would put the folder it starts in (this project) ahead of `$PYTHONPATH`, so that a tree named
    # there for an A/B would be ignored by every process started here; the project is on `path` after it instead
    with open(os.environ.get('BENCH_LOG', os.devnull), 'ab') as log:
        return subprocess.Popen([sys.executable, '-P', *args], cwd=ROOT, stdout=log, stderr=log,
                                env=dict(os.environ, PYTHONPATH=path, **env))


def stop(*procs):
    "SIGTERM each process, then wait for all."
    for p in procs: p.terminate()
    for p in procs: p.wait(60)


async def until(check, timeout=120.0, every=0.01, what='jobs to complete'):
    "Call `check()` every `every` s until it is true."
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end: raise TimeoutError(f"waited {timeout} s for {what}")
        await asyncio.sleep(every)


def all_in(keys, seen):
    "A check for `until`: whether every key of `keys` is in `seen`; each call goes on from the first key still missing."
    at = 0
    def check():
        nonlocal at
        while at < len(keys) and keys[at] in seen: at += 1
        return at == len(keys)
    return check
