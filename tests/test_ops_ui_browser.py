"""The operator view (`fh_saas.ops_ui`) in a real browser: tests/apps/ops_app.py (a tenant dashboard at /jobs and
the operator view at /ops, one session login) served by uvicorn over 122 tenant SQLite files, driven by Debian's
Chromium through Playwright, offline (CDN files answered locally, as in tests/test_ui_browser.py).
Screenshots go to tests/artifacts/ops_ui/; with FH_SAAS_UPDATE_IMAGES=1 the ones the docs show are also written to
nbs/images/.

The tenants are made here before the server starts: acme and globex, which the tests act on, and t000..t119 with
a known mix of jobs (`EXPECTED`), which no test changes. The app runs no Scheduler, so pending jobs stay pending.
"""
import asyncio, os, re, shutil
from concurrent.futures import ThreadPoolExecutor
import pytest
from conftest import Server, ARTIFACTS, ROOT
from test_ui_browser import Offline, cdn_file, NpmError, GITHUB_ONLY, PHONE, sideways

SHOTS, IMAGES = ARTIFACTS/'ops_ui', ROOT/'nbs'/'images'
DOC_IMAGES = {'ops_tenants', 'ops_failures', 'ops_job'}
WAIT = 20_000  # ms
N = 120        # tenants t000..t119, besides acme and globex

def expect(x, **kw):
    from playwright.sync_api import expect as e
    return e(x, **kw)

def mix(i:int) -> dict:
    "The jobs tenant t{i:03d} gets, by status."
    return dict(pending=i % 3, running=0, completed=i % 2, failed=int(i % 7 == 0), cancelled=int(i % 5 == 0))

EXPECTED = {f"t{i:03d}": mix(i) for i in range(N)}

# ------------------------------------------------------------------ the tenants, the server, the browser
def seed(data_dir) -> dict:
    "Make the tenants and their jobs; the ids of acme's and globex's jobs by what they are for."
    from fh_saas.db_host import SqliteHost
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    from apps.ops_app import flaky, noop
    host = SqliteHost(data_dir)
    async def run(mgr, *a, **kw):
        job_id, bg_task = mgr.submit(*a, **kw); await bg_task(); return job_id
    async def go():
        ids = {}
        for t in ('acme', 'globex', *EXPECTED): host.create(t)
        acme, globex = (BackgroundTaskManager(host.url(t)) for t in ('acme', 'globex'))
        ids['retry'] = await run(acme, 'flaky', flaky, max_retries=0, fail_until=1)      # fails once, then works
        ids['cancel'], _ = acme.enqueue('noop', noop)                                    # waits: nobody runs it
        ids['csrf'] = await run(acme, 'flaky', flaky, max_retries=0, fail_until=99)      # always fails
        ids['acme_done'] = await run(acme, 'noop', noop)
        ids['globex_done'] = await run(globex, 'noop', noop)
        ids['globex_failed'] = await run(globex, 'flaky', flaky, max_retries=0, fail_until=99)
        for t, want in EXPECTED.items():
            mgr = BackgroundTaskManager(host.url(t))
            for _ in range(want['pending']): mgr.enqueue('noop', noop)
            for _ in range(want['completed']): await run(mgr, 'noop', noop)
            for _ in range(want['failed']): await run(mgr, 'flaky', flaky, max_retries=0, fail_until=99)
            for _ in range(want['cancelled']): mgr.cancel(mgr.enqueue('noop', noop)[0])
        return ids
    with ThreadPoolExecutor(1) as ex: return ex.submit(asyncio.run, go()).result()   # Playwright's loop runs here

@pytest.fixture(scope='module')
def app(tmp_path_factory):
    "The seeded tenants and the server: `app.url`, `app.ids`."
    data = tmp_path_factory.mktemp('tenants')
    ids = seed(data)
    srv = Server('apps.ops_app:create_app', dict(DATA_DIR=str(data)), log=data/'server.log').start()
    srv.ids = ids
    yield srv
    srv.stop()

@pytest.fixture(scope='module')
def cdn(app):
    "Every external URL the app's pages load, with the local file that stands in for it (`None`: an empty script)."
    import urllib.request, http.cookiejar
    jar = http.cookiejar.CookieJar()
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = web.open(f'{app.url}/login?user=olga').read().decode()          # lands on /ops
    urls = re.findall(r'<script\b[^>]*\bsrc="(https?://[^"]+)"', html)
    urls += [re.search(r'\bhref="([^"]+)"', l).group(1) for l in re.findall(r'<link\b[^>]*>', html) if 'stylesheet' in l]
    files = {}
    for u in sorted(set(u for u in urls if re.match('https?://', u))):
        try: files[u] = cdn_file(u)
        except NpmError as e: pytest.fail(f'cannot serve {u} offline: {e}')
        if files[u] is None and not any(k in u for k in GITHUB_ONLY): pytest.fail(f'{u}: unknown external URL')
    assert any('htmx.org@' in u for u in files) and any('pico' in u for u in files), files
    return files

@pytest.fixture
def browse(chromium, app, cdn):
    "`browse(user)` opens a new browser session signed in as `user`; any console error or JS error fails the test."
    made = []
    def new(user:str, viewport:dict|None=None, console:bool=True):
        ctx = chromium.new_context(base_url=app.url, viewport=viewport or {'width': 1280, 'height': 900})
        off = Offline(app.url, cdn)
        ctx.route('**/*', off)
        page = ctx.new_page()
        page.errors, page.offline = [], off
        page.on('pageerror', lambda e: page.errors.append(f'JS error: {e}'))
        if console: page.on('console', lambda m: m.type == 'error' and page.errors.append(f'console: {m.text}'))
        page.goto(f'/login?user={user}')
        made.append((ctx, page))
        return page
    yield new
    problems = [e for _, p in made for e in p.errors]
    problems += [f'requests that left the machine: {p.offline.blocked}' for _, p in made if p.offline.blocked]
    for ctx, _ in made: ctx.close()
    assert not problems, problems

def shoot(page, name:str, full_page:bool=True):
    "Screenshot the page into tests/artifacts/ops_ui/ (and nbs/images/ for those the docs show, with FH_SAAS_UPDATE_IMAGES=1)."
    SHOTS.mkdir(parents=True, exist_ok=True)
    p = SHOTS/f'{name}.png'
    page.screenshot(path=str(p), full_page=full_page)
    assert p.stat().st_size > 2_000, p
    if os.environ.get('FH_SAAS_UPDATE_IMAGES') and name in DOC_IMAGES: shutil.copy2(p, IMAGES/p.name)

def row_counts(page) -> dict:
    "tenant -> {status: n} of the tenants table on the page."
    heads = [h.lower() for h in page.locator('table.ops-tenants thead th').all_inner_texts()]
    out = {}
    for r in page.locator('table.ops-tenants tbody tr').all():
        cells = [c.strip() for c in r.locator('td').all_inner_texts()]  # innerText of a row laid out under load may keep its source's line breaks
        out[cells[0]] = {h: int(c.replace(',', '')) for h, c in zip(heads, cells) if h in mix(0)}
    return out

def card(page): return page.locator('.job-detail')

# ------------------------------------------------------------------ tests
def test_tenant_users_get_404_on_every_operator_route_and_see_only_their_tenant(browse, app):
    ids = app.ids
    job, other = ids['retry'], ids['globex_failed']
    routes = ['/ops', '/ops?page=2', '/ops?q=t1', '/ops/-/failures', '/ops/-/schedules', f'/ops/-/find?job_id={job}',
              '/ops/acme', '/ops/globex', '/ops/t007', f'/ops/acme/{job}', f'/ops/acme/{job}/card', f'/ops/globex/{other}',
              f'/ops/acme/{job}/retry', f'/ops/acme/{job}/cancel', f'/ops/globex/{other}/retry', '/ops/nobody']
    acme_ids = {ids['retry'], ids['cancel'], ids['csrf'], ids['acme_done']}
    globex_ids = {ids['globex_done'], ids['globex_failed']}
    for user, tenant, mine, theirs, with_form in (('alice', 'acme', acme_ids, globex_ids, ids['cancel']),
                                                  ('bob', 'globex', globex_ids, acme_ids, ids['globex_failed'])):
        page = browse(user)
        expect(page.locator('h1')).to_have_text(f'Jobs of {tenant}')
        # their own dashboard: their tenant's jobs, none of the other's
        found = set(re.findall(r'[0-9a-f]{32}', page.content()))
        assert mine <= found and not found & theirs, (user, found)
        for j in theirs: assert page.request.get(f'{app.url}/jobs/{j}').status == 404
        assert page.goto(f'/jobs/{with_form}').ok      # a job page with a button: the session's token
        token = page.locator('input[name=csrf_token]').first.get_attribute('value')
        assert token, 'the tenant dashboard gave no CSRF token'
        nothing = page.request.get(f'{app.url}/no-such-page')
        assert nothing.status == 404
        for path in routes:
            for method, kw in (('GET', {}), ('POST', {'form': {'csrf_token': token}}), ('POST', {}), ('PUT', {}),
                               ('DELETE', {})):
                r = page.request.fetch(f'{app.url}{path}', method=method, max_redirects=0, **kw)
                assert (r.status, r.text()) == (404, nothing.text()), (user, method, path, r.status, r.text()[:200])
                assert 'ops' not in r.text().lower() and 'tenant' not in r.text().lower()
    # nothing a tenant user posted changed anything
    olga = browse('olga')
    olga.goto(f'/ops/acme/{job}')
    expect(card(olga)).to_have_attribute('data-status', 'failed')

def test_an_operator_sees_every_tenant_with_the_right_counts_page_by_page(browse):
    page = browse('olga')
    expect(page.locator('h1')).to_have_text('Operations')
    order = ['acme', 'globex', *EXPECTED]
    seen = {}
    for n, (lo, hi) in enumerate(((0, 50), (50, 100), (100, 122)), 1):
        if n > 1:
            page.click('a[rel=next]')
            page.wait_for_url(re.compile(rf'/ops\?page={n}$'))
        expect(page.get_by_text(f'{lo + 1}–{hi} of 122 tenants')).to_have_count(1)
        counts = row_counts(page)
        assert list(counts) == order[lo:hi], (n, list(counts))
        for t, c in counts.items():
            if t in EXPECTED: assert c == EXPECTED[t], (t, c, EXPECTED[t])
        seen.update(counts)
        if n == 1: shoot(page, 'ops_tenants', full_page=False)
    assert page.locator('a[rel=next]').count() == 0 and page.locator('a[rel=prev]').count() == 1
    assert list(seen) == order
    # the columns beyond the counts: queue age where jobs wait, failure rate where jobs ended
    row = page.locator('#tenant-t105 td')      # 105: 0 pending, 1 completed, 1 failed, 1 cancelled
    texts = row.all_inner_texts()
    assert texts[-2:] == ['', '50 % (1 of 2)'], texts
    assert re.fullmatch(r'\d+ s', page.locator('#tenant-t104 td').nth(-2).inner_text())   # 104 % 3 = 2 pending
    # back, and the filter
    page.click('a[rel=prev]')
    page.wait_for_url(re.compile(r'/ops\?page=2$'))
    page.fill('input[name=q]', 't11')
    page.click('button:has-text("Filter")')
    page.wait_for_url(re.compile(r'/ops\?q=t11'))
    assert list(row_counts(page)) == [f't11{i}' for i in range(10)]
    expect(page.get_by_text("1–10 of 10 tenants matching 't11'")).to_have_count(1)
    # a tenant's page: its own jobs and the schedules that run for it
    page.click('#tenant-t112 a')
    expect(page.locator('h1')).to_have_text('Tenant t112')
    assert row_counts(page) == {'t112': EXPECTED['t112']}
    expect(page.locator('table.jobs tbody tr')).to_have_count(sum(EXPECTED['t112'].values()))
    expect(page.locator('#schedule-nightly-sync')).to_have_count(1)
    expect(page.locator('#schedule-reports')).to_have_count(0)
    # the schedules and their next runs
    page.click('nav a:has-text("Schedules")')
    expect(page.locator('h1')).to_have_text('Schedules')
    for name in ('nightly-sync', 'reports'):
        runs = page.locator(f'#schedule-{name} td').nth(3).locator('li').all_inner_texts()
        assert len(runs) == 3 and all(re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d in ', r) for r in runs), (name, runs)
    assert page.locator('#schedule-nightly-sync td').nth(1).inner_text() == "cron '0 2 * * *' (Europe/Paris)"
    assert page.locator('#schedule-reports td').nth(2).inner_text().split() == ['acme', 'globex']

def test_retry_from_the_operator_view_runs_a_failed_job_again_and_it_completes(browse, app):
    job = app.ids['retry']
    page = browse('olga')
    page.click('nav a:has-text("Failures")')
    expect(page.locator('h1')).to_have_text('Failures')
    expect(page.locator(f'#failure-{job}')).to_contain_text('attempt 1: the bank API dropped the connection')
    shoot(page, 'ops_failures')
    page.click(f'#failure-{job} a[href$="{job}"]')
    page.wait_for_url(f'**/ops/acme/{job}')
    expect(card(page)).to_have_attribute('data-status', 'failed')
    page.click('button:has-text("Retry")')
    page.wait_for_url(f'**/ops/acme/{job}')
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    expect(page.locator('.job-detail pre').nth(1)).to_contain_text('"attempt": 2')
    shoot(page, 'ops_job')
    # the tenant's own user sees it completed too
    alice = browse('alice')
    alice.goto(f'/jobs/{job}')
    expect(card(alice)).to_have_attribute('data-status', 'completed')

def test_cancel_from_the_operator_view(browse, app):
    job = app.ids['cancel']
    page = browse('olga')
    page.goto('/ops/acme?status=pending')
    page.click(f'#job-{job}-row a')
    page.wait_for_url(f'**/ops/acme/{job}')
    expect(card(page)).to_have_attribute('data-status', 'pending')
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    expect(page.locator('button', has_text='Retry')).to_have_count(1)

def test_a_post_without_the_csrf_token_is_refused(browse, app):
    job = app.ids['csrf']
    page = browse('olga', console=False)         # the page another site makes POST ends on a 403: a console error
    page.goto(f'/ops/acme/{job}')
    token = page.locator('input[name=csrf_token]').first.get_attribute('value')
    url = f'{app.url}/ops/acme/{job}/retry'
    for form, headers in (({}, {}), ({'csrf_token': 'guessed'}, {}), ({'csrf_token': token}, {'Origin': 'http://evil.test'})):
        r = page.request.post(url, form=form, headers=headers, max_redirects=0)
        assert r.status == 403, (form, headers, r.status)
    evil = 'http://evil.test/'
    page.context.route(evil, lambda route: route.fulfill(content_type='text/html', body=(
        f'<form id="f" method="post" action="{url}"><input name="csrf_token" value="{token}"></form>'
        '<script>document.getElementById("f").submit()</script>')))
    with page.expect_response(lambda r: r.url == url) as resp:
        page.goto(evil)
    # Chromium keeps the session cookie (SameSite=Lax) off another site's POST: the app's login turns it away
    # before the view's own checks (the token, the Origin), which the requests above went through
    assert (resp.value.status, resp.value.headers.get('location')) == (303, '/login')
    page.goto(f'/ops/acme/{job}')
    expect(card(page)).to_have_attribute('data-status', 'failed')
    expect(page.locator('.job-errors summary')).to_have_count(1)        # no second attempt was made

def test_on_a_phone_no_operator_page_scrolls_sideways(browse, app):
    page = browse('olga', viewport=PHONE)
    wide = {}
    ids = app.ids
    pages = {'tenants': '/ops', 'page_3': '/ops?page=3', 'no_match': '/ops?q=zz', 'failures': '/ops/-/failures',
             'schedules': '/ops/-/schedules', 'acme': '/ops/acme', 't105': '/ops/t105',
             'failed_job': f"/ops/acme/{ids['csrf']}", 'completed_job': f"/ops/globex/{ids['globex_done']}"}
    for name, path in pages.items():
        page.goto(path)
        expect(page.locator('h1')).to_be_visible()
        if (w := sideways(page))[0] > w[1]: wide[path] = w
        shoot(page, f'phone_{name}')
    assert not wide, f'pages wider than the 390 px window (page width, window width): {wide}'
    page.goto('/ops')
    box = page.locator('table.ops-tenants').locator('xpath=..')
    assert box.evaluate('b => getComputedStyle(b).overflowX') in ('auto', 'scroll')
    assert box.evaluate('b => b.scrollWidth > b.clientWidth'), 'the table fits: nothing to scroll'
