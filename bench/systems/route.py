"""What a submitting route costs: one FastHTML app, served by uvicorn in its own process, with two routes that
return the same `Div`: `/submit` with the `bg_task` of `manager.submit('noop', noop)` (one tenant SQLite file),
`/bare` with a bare `starlette.background.BackgroundTask(noop)`. A keep-alive httpx client sends them in turn (HTMX
requests, so a fragment comes back); each request's time is from send to the whole response read."""
import os, socket, time
from pathlib import Path
from fasthtml.common import Div, FastHTML
from starlette.background import BackgroundTask
from fh_saas.utils_bgtsk import BackgroundTaskManager, JobStore
from systems import spawn, stop

LABEL = 'route: submit + `bg_task` vs bare `BackgroundTask`'
BACKEND, PROCESS = 'sqlite', True
WARMUP = 100


def noop(): return None


def tenant(): return BackgroundTaskManager(JobStore(f"sqlite:///{Path(os.environ['BENCH_DIR']) / 'tenant.db'}"))


def make_app():
    "The app uvicorn serves (`--factory systems.route:make_app`)."
    app, mgr = FastHTML(secret_key='bench'), tenant()

    @app.get('/submit')
    def submit(): return Div('queued'), mgr.submit('noop', noop)[1]

    @app.get('/bare')
    def bare(): return Div('queued'), BackgroundTask(noop)
    return app


async def measure(where, quick):
    import httpx
    n = 300 if quick else 2000
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    proc = spawn('-m', 'uvicorn', '--factory', 'systems.route:make_app', '--port', str(port), '--log-level', 'warning',
                 BENCH_DIR=str(where))
    ms = {'/submit': [], '/bare': []}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={'HX-Request': 'true'}) as c:
            for _ in range(200):
                try: c.get('/bare'); break
                except httpx.ConnectError: time.sleep(0.05)
            for i in range(WARMUP + n):
                for path in (('/submit', '/bare') if i % 2 else ('/bare', '/submit')):
                    t = time.perf_counter(); r = c.get(path); dt = time.perf_counter() - t
                    assert r.status_code == 200 and 'queued' in r.text, r.text
                    if i >= WARMUP: ms[path].append(1e3 * dt)
    finally: stop(proc)
    os.environ['BENCH_DIR'] = str(where)
    done = tenant().count_jobs(status='completed')
    assert done == WARMUP + n, f"{done} of {WARMUP + n} submitted jobs completed"
    return {'submit_ms': ms['/submit'], 'bare_ms': ms['/bare']}
