"""The job pages in a real browser: the demo app (`fh_saas.demo`) served by uvicorn, driven by Debian's Chromium
through Python Playwright, offline.

FastHTML's default headers load HTMX, Pico and three small helper scripts from cdn.jsdelivr.net, which these tests
never reach: every request that leaves the app's origin is answered here, with the real file wherever a registry
this workplace reaches publishes it. HTMX, Pico and css-scope-inline come from the npm registry's packages of the
same name (`.ci/npm_assets.py`, cached in .ci/.cache/npm/). Two scripts are published only on GitHub, not on npm,
PyPI or Debian: fasthtml.js (answerdotai/fasthtml-js) and Answer.AI's fork of surreal.js (the npm package named
`surreal` is another project). They alone get an empty script, the pages here use neither (a test checks that
their helpers are never called), and anything else is aborted and fails the test.

Screenshots go to tests/artifacts/ui/; with FH_SAAS_UPDATE_IMAGES=1 the ones the docs show are also written to
nbs/images/.
"""
import os, re, shutil, sys
import pytest
from conftest import ROOT, ARTIFACTS

sys.path.insert(0, str(ROOT/'.ci'))
from npm_assets import cdn_file, NpmError

SHOTS, IMAGES = ARTIFACTS/'ui', ROOT/'nbs'/'images'
DOC_IMAGES = {'demo', 'jobs_list', 'job_table', 'job_status', 'job_running', 'job_failed'}
CONTENT_TYPES = {'.js': 'application/javascript', '.css': 'text/css'}
GITHUB_ONLY = ('/gh/answerdotai/fasthtml-js@', '/gh/answerdotai/surreal@')   # on no registry reachable here
JOB_PAGE = re.compile(r'/jobs/([0-9a-f]{32})$')
WAIT = 30_000   # ms: the most any job here needs to reach the state waited for (retries wait 2 s)

def expect(x, **kw):
    from playwright.sync_api import expect as e
    return e(x, **kw)

# ------------------------------------------------------------------ offline CDN
def cdn_urls(data_dir) -> list[str]:
    "The URLs outside the app that the demo's pages load: scripts and stylesheets of FastHTML's default headers."
    from starlette.testclient import TestClient
    from fh_saas.demo import make_app
    html = TestClient(make_app(data_dir)).get('/').text
    scripts = re.findall(r'<script\b[^>]*\bsrc="(https?://[^"]+)"', html)
    sheets = [re.search(r'\bhref="([^"]+)"', l).group(1) for l in re.findall(r'<link\b[^>]*>', html) if 'stylesheet' in l]
    return sorted(set(scripts + [u for u in sheets if re.match('https?://', u)]))

@pytest.fixture(scope='module')
def cdn(tmp_path_factory):
    "Every external URL of the demo's pages, with the local file that stands in for it (`None`: an empty script)."
    urls, files = cdn_urls(tmp_path_factory.mktemp('cdn')), {}
    assert any('htmx.org@' in u for u in urls) and any('pico' in u for u in urls), urls
    for u in urls:
        try: files[u] = cdn_file(u)
        except NpmError as e: pytest.fail(f'cannot serve {u} offline: {e}')
        if files[u] is None and not any(k in u for k in GITHUB_ONLY):
            pytest.fail(f'{u}: an external URL these tests do not know how to serve offline')
    return files

class Offline:
    "A Playwright route handler: the app's own requests go through, CDN ones are answered locally, others aborted."
    def __init__(self, origin:str, files:dict): self.origin, self.files, self.served, self.blocked = origin, files, [], []
    def __call__(self, route):
        url = route.request.url
        if url.startswith(self.origin + '/'): return route.continue_()
        if url not in self.files: self.blocked.append(url); return route.abort()
        self.served.append(url)
        f = self.files[url]
        if f is None: return route.fulfill(body='', content_type='application/javascript')
        return route.fulfill(path=str(f), content_type=CONTENT_TYPES.get(f.suffix, 'application/octet-stream'))

# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture
def demo(server_factory): return server_factory('apps.ui_app:create_app')

@pytest.fixture
def browse(chromium, demo, cdn):
    "`browse()` opens a new browser session (a new user) on the demo; each fails the test on a JS error."
    made = []
    def new(viewport:dict|None=None):
        ctx = chromium.new_context(base_url=demo.url, viewport=viewport or {'width': 1280, 'height': 900})
        off = Offline(demo.url, cdn)
        ctx.route('**/*', off)
        page = ctx.new_page()
        page.js_errors, page.offline = [], off
        page.on('pageerror', lambda e: page.js_errors.append(str(e)))
        made.append((ctx, page))
        return page
    yield new
    problems = [f'JS errors: {p.js_errors}' for _, p in made if p.js_errors]
    problems += [f'requests that left the machine: {p.offline.blocked}' for _, p in made if p.offline.blocked]
    for ctx, _ in made: ctx.close()
    assert not problems, problems

def shoot(target, name:str, pad:int=0, **kw):
    "Screenshot a page, or an element with `pad` px around it, into tests/artifacts/ui/ (and nbs/images/ if asked)."
    SHOTS.mkdir(parents=True, exist_ok=True)
    p = SHOTS/f'{name}.png'
    if pad:
        b = target.bounding_box()
        target.page.screenshot(path=str(p), clip=dict(x=max(b['x'] - pad, 0), y=max(b['y'] - pad, 0),
                                                      width=b['width'] + 2*pad, height=b['height'] + 2*pad), **kw)
    else: target.screenshot(path=str(p), **kw)
    assert p.stat().st_size > 2_000, p
    if os.environ.get('FH_SAAS_UPDATE_IMAGES') and name in DOC_IMAGES:
        IMAGES.mkdir(exist_ok=True); shutil.copy2(p, IMAGES/p.name)

def submit(page, rows=100, seconds=1.0, fail_rate=0.0, retries=0) -> str:
    "Send the demo's import form; the id of the job whose page the browser lands on."
    page.goto('/')
    for name, v in dict(rows=rows, seconds=seconds, fail_rate=fail_rate, retries=retries).items():
        page.fill(f'input[name={name}]', str(v))
    page.click('button:has-text("Import contacts")')
    page.wait_for_url(JOB_PAGE)
    return JOB_PAGE.search(page.url).group(1)

def card(page): return page.locator('.job-detail')
def bar(page): return page.locator('.job-detail .job-status progress')
def timing(page, name): return page.locator(f'.job-detail tr:has(th:text-is("{name}")) td').inner_text()
def status_text(page): return page.locator('.job-detail .job-status').inner_text()

def cell(page, job_id:str, column:str) -> str:
    "The text of job `job_id`'s cell in the column headed `column` of the table on the page."
    heads = page.locator('table.jobs thead th').all_inner_texts()
    assert column in heads, f'no column {column!r} in the table: {heads}'
    return page.locator(f'#job-{job_id}-row td').nth(heads.index(column)).inner_text()

PHONE = {'width': 390, 'height': 844}
def sideways(page) -> tuple[int, int]:
    "How wide the page is and how wide the window: the page scrolls sideways when the first is larger."
    return tuple(page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]'))

# ------------------------------------------------------------------ tests
def test_progress_bar_fills_to_100_and_the_page_stops_polling(browse):
    page = browse()
    polls = []
    page.on('request', lambda r: r.url.endswith('/card') and polls.append(r.url))
    job_id = submit(page, rows=200, seconds=6)
    assert page.evaluate('typeof htmx') == 'object', 'HTMX did not load'
    assert page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--pico-primary')").strip(), \
        'Pico CSS did not load'
    page.evaluate('window.notReloaded = true')
    seen, shot = [], False
    for _ in range(WAIT // 100):   # watch the page, without touching it, until the job completes
        if (st := card(page).get_attribute('data-status')) == 'completed': break
        assert st in ('pending', 'running'), st
        v = bar(page).get_attribute('value')
        if v is not None: seen.append(float(v))
        if st == 'running' and v is not None and 0.25 <= float(v) < 1 and not shot:
            shoot(page, 'job_running', full_page=True)
            shoot(page.locator('.job-detail .job-status'), 'job_status', pad=16)
            shot = True
        page.wait_for_timeout(100)
    else: pytest.fail(f'the page did not show the job completed; bar values seen: {seen}')
    assert any(0 < v < 1 for v in seen), f'the bar never showed the job part-way: {seen}'
    assert seen == sorted(seen), f'the bar went backwards: {seen}'
    expect(bar(page)).to_have_attribute('value', '1.000')
    expect(page.locator('.job-detail .job-status')).to_contain_text(re.compile(r'ended .* UTC · took \d'))
    expect(page.locator('.job-detail .job-status')).not_to_contain_text('rows')   # the last progress message is gone
    expect(page.locator('.job-detail pre').nth(1)).to_contain_text('"imported": 200')
    assert page.evaluate('window.notReloaded'), 'the page was reloaded instead of updated in place'
    # finished: the card came back without its trigger, and no more polls go out
    assert card(page).get_attribute('hx-trigger') is None
    n = len(polls)
    page.wait_for_timeout(2_500)
    assert len(polls) == n, f'{len(polls) - n} polls after the job ended'
    assert polls and all(p.endswith(f'/jobs/{job_id}/card') for p in polls)
    assert sorted(set(page.offline.served)) == sorted(set(page.offline.files)), 'not every CDN file was requested'
    # the two scripts served empty (GitHub-only): nothing on the page calls their helpers
    inline = ' '.join(page.locator('script:not([src])').all_inner_texts()) + page.content()
    assert not re.search(r'\b(me|any|proc_htmx|sendmsg)\(', ' '.join(page.locator('script:not([src])').all_inner_texts()))
    assert not re.search(r'\b(on|hx-on)[a-z:-]*="[^"]*\bme\(', inline), 'an inline handler uses surreal'

def test_a_failing_job_shows_every_attempt_and_retry_runs_it_again(browse):
    page = browse()
    submit(page, rows=10, seconds=0.4, fail_rate=1, retries=1)
    expect(card(page)).to_have_attribute('data-status', 'failed', timeout=WAIT)
    summaries = page.locator('.job-errors summary').all_inner_texts()
    assert [re.match(r'Attempt (\d+)', s).group(1) for s in summaries] == ['1', '2'], summaries
    assert all('ConnectionError: the contacts API dropped the connection' in s for s in summaries), summaries
    expect(page.locator('.job-errors details[open] pre')).to_contain_text('Traceback (most recent call last)')
    expect(page.locator('.job-errors details[open] pre')).to_be_visible()
    assert timing(page, 'Attempts') == '2'
    expect(page.locator('.job-detail .job-status')).to_contain_text('ConnectionError')
    expect(page.locator('button', has_text='Cancel')).to_have_count(0)
    shoot(page, 'job_failed', full_page=True)

    page.click('button:has-text("Retry")')
    page.wait_for_url(JOB_PAGE)
    expect(page.locator('.job-detail h4', has_text='Errors')).to_have_text('Errors (4)', timeout=WAIT)
    expect(card(page)).to_have_attribute('data-status', 'failed')
    summaries = page.locator('.job-errors summary').all_inner_texts()
    assert [re.match(r'Attempt (\d+)', s).group(1) for s in summaries] == ['1', '2', '3', '4'], summaries
    assert timing(page, 'Attempts') == '4'

def test_cancel_a_running_job_then_retry_it(browse):
    page = browse()
    submit(page, rows=1000, seconds=60)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    expect(page.locator('button', has_text='Retry')).to_have_count(0)
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    assert card(page).get_attribute('hx-trigger') is None
    expect(page.locator('button', has_text='Cancel')).to_have_count(0)
    assert float(bar(page).get_attribute('value')) < 1

    page.click('button:has-text("Retry")')
    page.wait_for_url(JOB_PAGE)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    assert timing(page, 'Attempts') == '2 of 2'        # no automatic retries: this round allows one attempt
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)

def test_one_tenant_cannot_reach_another_tenants_jobs(browse, demo):
    page = browse()
    acme_job = submit(page, rows=10, seconds=0.2)
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    page.goto('/')
    expect(page.locator('h1')).to_have_text('Jobs of acme')
    expect(page.locator(f'#job-{acme_job}-row')).to_have_count(1)

    page.click('form.tenants button:has-text("globex")')
    expect(page.locator('h1')).to_have_text('Jobs of globex')
    expect(page.locator(f'#job-{acme_job}-row')).to_have_count(0)
    page.goto('/jobs')
    expect(page.locator('h1')).to_have_text('Jobs of globex')
    assert acme_job not in page.content()
    for path in (f'/jobs/{acme_job}', f'/jobs/{acme_job}/card', f'/jobs/{acme_job}/status'):
        assert page.goto(path).status == 404, path
    expect(page.locator('h1')).to_have_text('Job not found')

    # globex's own job page gives a valid token; with it, acme's job still does not exist
    globex_job = submit(page, rows=10, seconds=0.2)
    token = page.locator('input[name=csrf_token]').first.get_attribute('value')
    for act in ('retry', 'cancel'):
        r = page.request.post(f'{demo.url}/jobs/{acme_job}/{act}', form={'csrf_token': token}, max_redirects=0)
        assert r.status == 404, (act, r.status)
    # another user, who is on acme, sees acme's job and not globex's
    other = browse()
    assert other.goto(f'/jobs/{acme_job}').status == 200
    assert other.goto(f'/jobs/{globex_job}').status == 404

def test_another_site_cannot_post_to_the_dashboard(browse, demo):
    page = browse()
    job_id = submit(page, rows=1000, seconds=60)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    token = page.locator('input[name=csrf_token]').first.get_attribute('value')
    evil = 'http://evil.test/'
    page.context.route(evil, lambda route: route.fulfill(content_type='text/html', body=(
        f'<form id="f" method="post" action="{demo.url}/jobs/{job_id}/cancel">'
        '<input name="csrf_token" value="guessed"></form><script>document.getElementById("f").submit()</script>')))
    with page.expect_response(lambda r: r.url.endswith(f'/jobs/{job_id}/cancel')) as resp:
        page.goto(evil)
    assert resp.value.status == 403
    assert 'another site' in resp.value.text()            # Chromium sent Sec-Fetch-Site: cross-site
    # a valid token does not help a request from another origin
    r = page.request.post(f'{demo.url}/jobs/{job_id}/cancel', form={'csrf_token': token},
                          headers={'Origin': 'http://evil.test'}, max_redirects=0)
    assert (r.status, 'origin http://evil.test is not this site' in r.text()) == (403, True)
    page.goto(f'/jobs/{job_id}')
    expect(card(page)).to_have_attribute('data-status', 'running')
    page.click('button:has-text("Cancel")')              # the page's own form does it
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)

def test_the_list_filters_pages_and_refuses_bad_filters(browse):
    page = browse()
    done = submit(page, rows=120, seconds=0.3)
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    bad = submit(page, rows=80, seconds=0.3, fail_rate=1, retries=0)
    expect(card(page)).to_have_attribute('data-status', 'failed', timeout=WAIT)
    stopped = submit(page, rows=500, seconds=60)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    running = submit(page, rows=300, seconds=20)
    page.wait_for_function("() => Number(document.querySelector('.job-detail progress')?.getAttribute('value')) > 0.1",
                           timeout=WAIT)

    page.goto('/')
    rows = page.locator('table.jobs tbody tr')
    expect(rows).to_have_count(4)
    assert rows.evaluate_all('rs => rs.map(r => r.dataset.status)') == ['running', 'cancelled', 'failed', 'completed']
    assert page.locator('table.jobs').get_attribute('hx-trigger') == 'every 1s'   # a job in it is still running
    shoot(page, 'demo', full_page=True)
    shoot(page.locator('table.jobs'), 'job_table', pad=16)

    page.goto('/jobs')
    expect(page.locator('h1')).to_have_text('Jobs of acme')
    shoot(page, 'jobs_list', full_page=True)
    page.select_option('select[name=status]', 'failed')
    page.click('button:has-text("Filter")')
    page.wait_for_url(re.compile(r'/jobs\?status=failed'))
    expect(rows).to_have_count(1)
    expect(page.locator(f'#job-{bad}-row')).to_have_count(1)
    assert page.locator('table.jobs').get_attribute('hx-trigger') is None         # nothing in view will change
    expect(page.get_by_text('1–1 of 1')).to_have_count(1)

    r = page.goto('/jobs?status=bogus')
    assert r.status == 400
    expect(page.locator('main')).to_contain_text(
        "status must be one of pending, running, completed, failed, cancelled, not 'bogus'")
    assert page.goto('/jobs?page=0').status == 400

    page.goto(f'/jobs/{running}')
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    assert {done, bad, stopped, running} <= set(re.findall(r'[0-9a-f]{32}', page.goto('/jobs').text()))

def test_an_ended_job_shows_its_end_state_not_its_last_progress_message(browse):
    page = browse()
    # running: the bar and the task's last message
    done = submit(page, rows=100, seconds=3)
    expect(page.locator('.job-detail .job-status')).to_contain_text(' of 100 rows', timeout=WAIT)
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    text = status_text(page)
    assert 'rows' not in text, f'a completed job shows its last progress message: {text!r}'
    assert re.search(r'ended \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC', text) and re.search(r'took \d', text), text
    expect(bar(page)).to_have_attribute('value', '1.000')
    # failed half-way: it says it ended, where it stopped, and why
    failed = submit(page, rows=100, seconds=2, fail_rate=1, retries=0)
    expect(card(page)).to_have_attribute('data-status', 'failed', timeout=WAIT)
    text = status_text(page)
    assert 'rows' not in text and 'ended' in text and 'ConnectionError' in text, text
    assert re.search(r'stopped at \d+ %', text), text
    # cancelled while running
    cancelled = submit(page, rows=100, seconds=60)
    expect(page.locator('.job-detail .job-status')).to_contain_text(' of 100 rows', timeout=WAIT)
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    text = status_text(page)
    assert 'rows' not in text and 'ended' in text and re.search(r'stopped at \d+ %', text), text
    # the same end states in the table, and in the status fragment an app embeds
    page.goto('/jobs')
    assert re.fullmatch(r'took \d+\.\d s', cell(page, done, 'Progress')), cell(page, done, 'Progress')
    for j in (failed, cancelled):
        assert re.fullmatch(r'stopped at \d+ %', cell(page, j, 'Progress')), (j, cell(page, j, 'Progress'))
    page.goto(f'/jobs/{done}/status')
    assert 'rows' not in page.locator('body').inner_text() and 'ended' in page.locator('body').inner_text()

def test_after_a_manual_retry_the_table_still_counts_every_attempt(browse):
    page = browse()
    job = submit(page, rows=100, seconds=3)                # no automatic retries
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
    page.goto('/jobs')
    assert cell(page, job, 'Attempts') == '1'
    page.goto(f'/jobs/{job}')
    page.click('button:has-text("Retry")')
    page.wait_for_url(JOB_PAGE)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    assert timing(page, 'Attempts') == '2 of 2'            # the second attempt, and this round allows no more
    page.goto('/jobs')
    assert cell(page, job, 'Attempts') == '2 of 2'
    page.goto(f'/jobs/{job}')
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    assert timing(page, 'Attempts') == '2'
    page.goto('/jobs')
    assert cell(page, job, 'Attempts') == '2', page.locator(f'#job-{job}-row').inner_text()
    assert '0 of 0' not in page.locator('table.jobs').inner_text()

def test_on_a_phone_no_dashboard_page_scrolls_sideways(browse):
    page = browse(viewport=PHONE)
    ok = submit(page, rows=100, seconds=0.3)
    expect(card(page)).to_have_attribute('data-status', 'completed', timeout=WAIT)
    bad = submit(page, rows=100, seconds=0.3, fail_rate=1, retries=1)
    expect(card(page)).to_have_attribute('data-status', 'failed', timeout=WAIT)
    running = submit(page, rows=1000, seconds=60)
    expect(card(page)).to_have_attribute('data-status', 'running', timeout=WAIT)
    wide = {}
    for path in ('/', '/jobs', f'/jobs/{ok}', f'/jobs/{bad}', f'/jobs/{running}', '/jobs?status=bogus'):
        page.goto(path)
        page.wait_for_load_state('networkidle')
        if (w := sideways(page))[0] > w[1]: wide[path] = w
        shoot(page, 'phone' + re.sub(r'[^a-z]+', '_', path.replace(ok, 'completed').replace(bad, 'failed')
                                      .replace(running, 'running')).rstrip('_'), full_page=True)
    assert not wide, f'pages wider than the 390 px window (page width, window width): {wide}'
    # the table scrolls inside its own box, which stays put while the table refreshes itself
    page.goto('/jobs')
    box = page.locator('table.jobs').locator('xpath=..')
    assert box.evaluate('b => getComputedStyle(b).overflowX') in ('auto', 'scroll')
    assert box.evaluate('b => b.scrollWidth > b.clientWidth'), 'the table fits: nothing to scroll'
    assert page.locator('table.jobs').get_attribute('hx-trigger') == 'every 1s'
    left = box.evaluate('b => { b.scrollLeft = b.scrollWidth; b.querySelector("table").dataset.old = "1"; return b.scrollLeft }')
    assert left > 0
    page.wait_for_function('() => !document.querySelector("table.jobs").dataset.old', timeout=WAIT)  # a refresh came
    expect(page.locator('table.jobs')).to_have_count(1)
    expect(page.locator('.jobs-scroll .jobs-scroll')).to_have_count(0)      # the box was not nested in itself
    assert box.evaluate('b => b.scrollLeft') == left, 'the refresh scrolled the table back'
    assert sideways(page)[0] <= PHONE['width']
    # a traceback scrolls inside its block
    page.goto(f'/jobs/{bad}')
    pre = page.locator('.job-errors details[open] pre')
    assert pre.evaluate('p => getComputedStyle(p).overflowX') in ('auto', 'scroll')
    assert pre.evaluate('p => p.getBoundingClientRect().right') <= PHONE['width']
    page.goto(f'/jobs/{running}')
    page.click('button:has-text("Cancel")')
    expect(card(page)).to_have_attribute('data-status', 'cancelled', timeout=WAIT)
