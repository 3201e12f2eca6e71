"One manager shared by 8 threads: no connection is shared, nothing fails, nothing is lost."
import threading
import anyio
from concurrent.futures import ThreadPoolExecutor
from fh_saas.utils_bgtsk import BackgroundTaskManager

def work(i): return i * 2

def test_8_threads_x_200_submits_one_manager(tmp_path):
    mgr = BackgroundTaskManager(tmp_path/'t.db', create=True)
    errors, tasks, lock = [], [], threading.Lock()
    def submitter(t):
        for k in range(200):
            try:
                job_id, bg = mgr.submit('work', work, i=t*200+k)
                with lock: tasks.append(bg)
            except Exception as e: errors.append(e)
    with ThreadPoolExecutor(8) as ex: list(ex.map(submitter, range(8)))
    assert errors == [] and len(tasks) == 1600 and mgr.count_jobs() == 1600
    async def run_all():   # as Starlette would: many responses' tasks on one loop at once
        async with anyio.create_task_group() as tg:
            for bg in tasks: tg.start_soon(bg)
    anyio.run(run_all)
    assert mgr.count_jobs(status='completed') == 1600
    done = mgr.list_jobs(limit=1000) + mgr.list_jobs(limit=1000, offset=1000)
    assert sorted(j.result for j in done) == [i*2 for i in range(1600)]
    assert all(j.attempt == 1 and j.retry_count == 0 for j in done)
