"""Task functions for the fault tests (tests/test_faults.py).

Every execution logs one JSON line per event (O_APPEND, one write) in $EXEC_LOG: `start` and `end` with the job id,
the attempt (`current_job().attempt`), the pid and `time.time()`, so tests can count runs and check overlap."""
import os, sys, json, time, asyncio
from fh_saas.utils_bgtsk import current_job
try: from fh_saas.utils_bgtsk import task  # declared tasks: a runner may refuse functions it was not told about
except ImportError:  # pragma: no cover
    def task(fn=None, **kw): return fn

def log_event(ev: str, **kw):
    j = current_job()
    rec = dict(ev=ev, id=getattr(j, 'id', None), attempt=getattr(j, 'attempt', None), pid=os.getpid(), t=time.time(), **kw)
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try: os.write(fd, ('\n' + json.dumps(rec) + '\n').encode())  # its own line even after a torn one
    finally: os.close(fd)

@task
def f_sleep(s: float = 3.0, tag: str = ''):
    "Sleeps `s` seconds in one `time.sleep`: it never looks at cancel requests."
    log_event('start', tag=tag)
    time.sleep(s)
    log_event('end', tag=tag)
    return s

@task
def f_sleep_then_check(s: float = 3.0, tag: str = ''):
    "Sleeps `s` seconds without looking, then checks whether it should stop (it raises `JobTimeout` past its timeout)."
    log_event('start', tag=tag)
    time.sleep(s)
    log_event('end', tag=tag)
    current_job().check_cancelled()
    return s

@task
def f_quick(tag: str = ''):
    log_event('start', tag=tag); log_event('end', tag=tag)
    return 'ok'

@task
def f_exit():
    log_event('start')
    sys.exit(3)

@task
def f_interrupt():
    log_event('start')
    raise KeyboardInterrupt

@task
async def f_cancel_self():
    log_event('start')
    await asyncio.sleep(0)
    raise asyncio.CancelledError()

class BadStr(Exception):
    "An exception that cannot be turned into text."
    def __str__(self): raise RuntimeError('BadStr.__str__ raises')

@task
def f_bad_str():
    log_event('start')
    raise BadStr()

@task
def f_raise_at_gate(gate: str, wait: float = 20.0):
    "Waits (bounded) until the file `gate` exists, then fails: the attempt raises after the test asked to cancel."
    log_event('start')
    end = time.time() + wait
    while not os.path.exists(gate) and time.time() < end: time.sleep(0.02)
    log_event('end')
    raise ValueError('attempt failed after the cancel request')
