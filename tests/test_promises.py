"""Promises the docs make that no other test held to: each on SQLite and PostgreSQL where it applies."""
import os, signal, subprocess, sys, time
from collections import Counter
import anyio, httpx
from conftest import ROOT, Server, exec_runs, free_port, wait_port, wait_for
from fh_saas.db_host import SqliteHost
from fh_saas.scheduler import Scheduler
from fh_saas.utils_bgtsk import BackgroundTaskManager

def add(a, b): return a + b

def test_run_at_is_respected(host):
    m = BackgroundTaskManager(host.create('acme'))
    due = time.time() + 0.6
    i, bg = m.enqueue('add', add, dict(a=1, b=2), run_at=due)
    assert m.get_job(i).run_at == due
    anyio.run(bg)                                          # the response-time task waits for it
    j = m.get_job(i)
    assert j.status == 'completed' and j.started_at >= j.created_at
    from datetime import datetime
    assert datetime.fromisoformat(j.started_at).timestamp() >= due

def test_web_processes_only_enqueue_when_told(host, monkeypatch):
    "FH_SAAS_RUN_JOBS=workers: `bg_task` writes nothing and runs nothing; a worker (here a scheduler) runs the job."
    monkeypatch.setenv('FH_SAAS_RUN_JOBS', 'workers')
    m = BackgroundTaskManager(host.create('acme'))
    i, bg = m.submit('add', add, a=2, b=2)
    anyio.run(bg)
    assert m.get_job(i).status == 'pending'
    async def go():
        async with Scheduler(host, poll=0.1).running():
            with anyio.fail_after(10):
                while m.get_job(i).status != 'completed': await anyio.sleep(0.02)
    anyio.run(go)
    assert m.get_job(i).result == 4

def test_an_idle_scheduler_queries_no_database(tmp_path):
    host = SqliteHost(tmp_path)
    for k in range(30): BackgroundTaskManager(host.create(f"t{k:02d}"))
    s = Scheduler(host, poll=0.05, full_scan=600)
    async def go():
        async with s.running():
            with anyio.fail_after(10):
                while s.unseen: await anyio.sleep(0.01)   # every tenant looked at once
                n = s.stats['scans']  # then a few scans: a file looked at within 50 ms of its last change is looked at
                while s.stats['scans'] < n + 3: await anyio.sleep(0.01)   # again once its clock has moved on
            q0, n0 = s.stats['queries'], s.stats['scans']
            while s.stats['scans'] < n0 + 10: await anyio.sleep(0.01)
            return s.stats['queries'] - q0
    assert anyio.run(go) == 0          # ten looks at 30 idle tenants: files stat-ed, no database queried
    BackgroundTaskManager(host.url('t07'), run_here=False).submit('add', add, a=1, b=1)   # a commit elsewhere...
    async def again():
        async with s.running():
            with anyio.fail_after(10):
                while s.stats['queries'] < 31: await anyio.sleep(0.01)   # ...is seen: the start-up scan, then t07
    anyio.run(again)

def test_sigterm_of_uvicorn_mid_job_finishes_or_hands_back(tmp_path):
    "SIGTERM while jobs run: the app waits for them (grace), exits cleanly, and each job ran once."
    env = dict(DATA_DIR=str(tmp_path/'data'), EXEC_LOG=str(tmp_path/'exec.log'))
    srv = Server('apps.crash_app:create_app', env, log=tmp_path/'server.log').start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as cli:
            ids = cli.post('/enqueue/acme', params=dict(n=6, ms=1500)).json()
        m = BackgroundTaskManager(SqliteHost(env['DATA_DIR']).url('acme'))
        wait_for(lambda: m.count_jobs(status='running') > 0, timeout=10, msg='jobs running')
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)   # uvicorn re-raises the signal once shut down
    finally: srv.kill()
    runs = exec_runs(tmp_path/'exec.log', ids)
    states = Counter(m.get_job(i).status for i in ids)
    assert states['running'] == 0, states                         # nothing left held by the stopped process
    assert all(runs[i] == 1 for i in ids if m.get_job(i).status == 'completed')
    assert set(states) <= {'completed', 'pending'} and states['completed'] >= 1, states
    assert all(m.get_job(i).retry_count == 0 for i in ids)        # a clean stop counts no retry

def test_two_uvicorn_workers_on_one_set_of_sqlite_files(tmp_path):
    "uvicorn --workers 2: two schedulers over the same tenant files; every job runs exactly once."
    env = dict(os.environ, DATA_DIR=str(tmp_path/'data'), EXEC_LOG=str(tmp_path/'exec.log'),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT/'tests')]))
    port = free_port()
    log = open(tmp_path/'server.log', 'ab')
    p = subprocess.Popen([sys.executable, '-m', 'uvicorn', '--factory', 'apps.crash_app:create_app', '--workers', '2',
                          '--host', '127.0.0.1', '--port', str(port), '--log-level', 'warning'], env=env, stdout=log, stderr=log)
    try:
        wait_port(port, p)
        ids = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as cli:
            for k in range(40): ids += cli.post(f"/enqueue/{('acme', 'globex')[k % 2]}", params=dict(n=10, ms=5)).json()
        host = SqliteHost(env['DATA_DIR'])
        mgrs = [BackgroundTaskManager(host.url(t)) for t in ('acme', 'globex')]
        wait_for(lambda: sum(m.count_jobs(status='completed') for m in mgrs) == 400, timeout=60, msg='400 completed')
    finally:
        p.send_signal(signal.SIGTERM)
        try: p.wait(30)
        except subprocess.TimeoutExpired: p.kill(); p.wait()
    runs = exec_runs(tmp_path/'exec.log', ids)
    assert set(runs) == set(ids) and set(runs.values()) == {1}
