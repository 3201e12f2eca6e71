"Tasks and a schedule for the schedule tests: each run is one O_APPEND line in $EXEC_LOG (job id, pid, time)."
import os, time
from fh_saas.utils_bgtsk import current_job
from fh_saas.schedules import Schedule

def tick():
    j = current_job()
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, f"{j.id} {os.getpid()} {time.time():.3f}\n".encode())
    finally: os.close(fd)

def work(tag: str):
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, f"{current_job().id} {tag} {time.time():.3f}\n".encode())
    finally: os.close(fd)

# Not declared with `schedule`: a declared schedule is kept by every scheduler of the process, and the test process
# runs other tests' schedulers too. Workers import apps.sched_declared, which declares it.
TICK = Schedule('tick', tick, every=1)
