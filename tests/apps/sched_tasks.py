"Tasks and a schedule for the schedule tests: each run is one O_APPEND line in $EXEC_LOG (job id, pid, time)."
import os, time
from fh_saas.utils_bgtsk import current_job
from fh_saas.schedules import schedule

def tick():
    j = current_job()
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, f"{j.id} {os.getpid()} {time.time():.3f}\n".encode())
    finally: os.close(fd)

def work(tag: str):
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, f"{current_job().id} {tag} {time.time():.3f}\n".encode())
    finally: os.close(fd)

# every process that imports this module (the test, each `fh-saas-worker --imports apps.sched_tasks`) keeps it
TICK = schedule('tick', tick, every=1)
