"Task functions for the worker tests: each execution is logged as one line (O_APPEND) in $EXEC_LOG: see `conftest.exec_runs`."
import os, time
from fh_saas.utils_bgtsk import current_job

def work(ms: int = 0):
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, ('\n' + current_job().id + '\n').encode())
    finally: os.close(fd)
    if ms: time.sleep(ms / 1000)
    return ms

async def nap(seconds: float = 30.0):
    "An async task that sleeps: a runner stopping cancels it and hands the job back."
    import asyncio
    fd = os.open(os.environ.get('EXEC_LOG', os.devnull), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, ('\n' + current_job().id + '\n').encode())
    finally: os.close(fd)
    await asyncio.sleep(seconds)
