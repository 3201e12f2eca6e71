"""The operator's gates over HTTP (no browser): the operator view answers 404 to anyone its `allow` refuses, on every
route and method, and acts for those it accepts. The browser tests (test_ops_ui_browser.py) cover the pages."""
from fasthtml.common import fast_app
from starlette.testclient import TestClient
from fh_saas.db_host import SqliteHost
from fh_saas.ops_ui import mount_ops
from fh_saas.utils_bgtsk import BackgroundTaskManager

def fail(): raise RuntimeError('boom')

def test_the_operator_view_is_404_to_anyone_allow_refuses(tmp_path):
    host = SqliteHost(tmp_path/'tenants')
    for t in ('acme', 'globex'): host.create(t)
    m = BackgroundTaskManager(host.url('acme'), run_here=False)
    job_id, _ = m.enqueue('fail', fail, max_retries=0)
    app, _ = fast_app(secret_key='test')
    mount_ops(app, host, allow=lambda req: req.headers.get('x-operator') == 'olga')
    cli = TestClient(app)
    routes = ['/ops', '/ops/-/failures', '/ops/-/schedules', f'/ops/-/find?job_id={job_id}', '/ops/acme',
              f'/ops/acme/{job_id}']
    for path in routes:
        assert cli.get(path).status_code == 404, path
        assert cli.get(path, headers={'x-operator': 'olga'}).status_code == 200, path
    for action in ('retry', 'cancel'):
        assert cli.post(f'/ops/acme/{job_id}/{action}').status_code == 404
    assert m.get_job(job_id).status == 'pending', "a refused POST changed nothing"
    page = cli.get('/ops', headers={'x-operator': 'olga'}).text
    assert 'acme' in page and 'globex' in page
