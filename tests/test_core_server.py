"The route flow on a real uvicorn server: the response comes first, the job runs after it, retries really run."
import re, threading, time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
import httpx, pytest
from conftest import wait_for
from fh_saas.db_host import SqliteHost
from fh_saas.utils_bgtsk import BackgroundTaskManager

def job(cli, tenant, job_id): return cli.get(f"/job/{tenant}/{job_id}").json()

def test_response_before_task_then_completed(server_factory):
    srv = server_factory('apps.route_app:create_app')
    with httpx.Client(base_url=srv.url, timeout=10) as cli:
        r = cli.post('/sync/acme', params=dict(seconds=1.5))
        assert r.status_code == 200
        job_id = re.search(r'Syncing\.\.\. ([0-9a-f]{32})', r.text).group(1)
        # the response is here while the 1.5 s task has not finished
        assert job(cli, 'acme', job_id)['status'] in ('pending', 'running')
        j = wait_for(lambda: (d := job(cli, 'acme', job_id))['status'] == 'completed' and d, timeout=15)
        assert j['result'] == {'slept': 1.5} and j['retry_count'] == 0

def test_retry_really_runs_after_backoff(server_factory, tmp_path):
    srv = server_factory('apps.route_app:create_app')
    with httpx.Client(base_url=srv.url, timeout=10) as cli:
        r = cli.post('/flaky/acme', params=dict(marker=str(tmp_path/'marker')))
        job_id = re.search(r'[0-9a-f]{32}', r.text).group(0)
        j = wait_for(lambda: (d := job(cli, "acme", job_id))["status"] in ("completed", "failed") and d, timeout=20)
    assert (j['status'], j['result'], j['retry_count'], j['attempt']) == ('completed', 'second time lucky', 1, 2)
    (err,) = j['error_log']
    assert 'ConnectionError: first attempt fails' in err['error'] and 'Traceback' in err['traceback']
    waited = (datetime.fromisoformat(j['started_at']) - datetime.fromisoformat(err['at'])).total_seconds()
    assert waited >= 2.0, waited   # the first retry waits 2 s

@pytest.mark.parametrize('route,status', [('/redirect/acme', 303), ('/json/acme', 200)])
def test_with_task_keeps_the_task(server_factory, route, status):
    srv = server_factory('apps.route_app:create_app')
    with httpx.Client(base_url=srv.url, timeout=10) as cli:
        r = cli.post(route, follow_redirects=False)
        assert r.status_code == status
    mgr = BackgroundTaskManager(SqliteHost(srv.env['DATA_DIR']).url('acme'))
    wait_for(lambda: [j for j in mgr.list_jobs() if j.status == 'completed'], timeout=10, msg='the job ran')

def test_1600_concurrent_requests_one_shared_manager(server_factory):
    "8 client threads x 200 requests, each submitting through one module-level manager in a sync route."
    srv = server_factory('apps.route_app:create_app')
    def client(t):
        with httpx.Client(base_url=srv.url, timeout=30) as cli:
            return [cli.post('/shared', params=dict(i=t*1000+k)).status_code for k in range(200)]
    with ThreadPoolExecutor(8) as ex: codes = [c for cs in ex.map(client, range(8)) for c in cs]
    assert len(codes) == 1600 and set(codes) == {200}
    mgr = BackgroundTaskManager(SqliteHost(srv.env['DATA_DIR']).url('shared'))
    wait_for(lambda: mgr.count_jobs(status='completed') == 1600, timeout=60, msg='1600 completed')
    assert mgr.count_jobs() == 1600
    assert sorted(j.result for j in mgr.list_jobs(limit=1000) + mgr.list_jobs(limit=1000, offset=1000)) == \
           sorted(t*1000+k for t in range(8) for k in range(200))
