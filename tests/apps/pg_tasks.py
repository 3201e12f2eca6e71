"Task functions for the worker tests: each execution is logged as one line (O_APPEND) in $EXEC_LOG."
import os, time
from fh_saas.utils_bgtsk import current_job

def work(ms: int = 0):
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, (current_job().id + '\n').encode())
    finally: os.close(fd)
    if ms: time.sleep(ms / 1000)
    return ms
