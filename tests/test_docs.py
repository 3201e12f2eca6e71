"""The rendered docs: build `_docs/` once with `.ci/build_docs.py`, serve it on 127.0.0.1 and open every page
in headless Chromium (Python Playwright + Debian's /usr/bin/chromium).

Each page is visited once (session fixture `docs_visits`); the tests below assert on what was collected:
title, navigation, no error output, no JS console errors or failed requests, every public name of the
page's module present, internal links and anchors resolving, Mermaid diagrams drawn. Screenshots go to
tests/artifacts/docs/.
"""
import importlib, json, re, subprocess, sys, threading, time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS = ROOT/'nbs', ROOT/'_docs'
ARTIFACTS = ROOT/'tests'/'artifacts'/'docs'
SKIP_PREFIXES = ('_', '.', 'test_')

# ------------------------------------------------------------------ helpers (independent of the build script)
def nb_cells(p:Path):
    for c in json.loads(p.read_text()).get('cells', []):
        s = c.get('source', '')
        yield c.get('cell_type'), (''.join(s) if isinstance(s, list) else s)

def source_notebooks():
    return [p for p in sorted(NBS.glob('*.ipynb')) if not p.name.startswith(SKIP_PREFIXES)]

def page_of(nb:Path) -> str:
    "The page nbdev (and Quarto) publish a notebook as."
    from nbdev.config import nbpath2html
    return 'index.html' if nb.stem == 'index' else nbpath2html(nb).name

def default_exp(nb:Path):
    for ct, s in nb_cells(nb):
        if ct == 'code' and (m := re.search(r'^\s*#\|\s*default_exp\s+(\S+)', s, re.M)): return m.group(1)

def mermaid_fences(nb:Path) -> int:
    return sum(len(re.findall(r'^```+\s*\{?mermaid\}?\s*$', s, re.M)) for ct, s in nb_cells(nb) if ct == 'markdown')

# Real error output, not prose that names an exception class.
ERROR_TEXT = [re.compile(r'Traceback \(most recent call last\)'),
              re.compile(r'^\s*(?:[A-Za-z_][\w.]*)?(?:Error|Exception): ', re.M),   # only checked inside outputs
              re.compile(r'Syntax error in text|Parse error on line')]             # mermaid's error diagram

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def docs_build():
    t = time.time()
    r = subprocess.run([sys.executable, str(ROOT/'.ci'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    secs = time.time() - t
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS/'build.log').write_text(f'exit {r.returncode} in {secs:.1f} s\n{r.stdout}\n{r.stderr}')
    if r.returncode: pytest.fail(f'docs build failed (exit {r.returncode}):\n{(r.stdout + r.stderr)[-4000:]}')
    pages = sorted(p.name for p in DOCS.glob('*.html'))
    assert pages, 'the build wrote no pages'
    return SimpleNamespace(pages=pages, seconds=secs, log=r.stdout)

@pytest.fixture(scope='module')
def docs_server(docs_build):
    srv = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(DOCS)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='module')
def docs_browser(chromium): return chromium   # conftest's: one Playwright per process, shared with the UI tests

COLLECT_JS = """() => {
  const main = document.querySelector('main') || document.body;
  const prose = main.cloneNode(true);
  prose.querySelectorAll('pre, code, svg').forEach(e => e.remove());
  return {
    title: document.title,
    h1: (document.querySelector('h1') || {}).innerText || '',
    text: document.body.innerText,
    prose: prose.innerText,
    outputs: [...document.querySelectorAll('.output')].map(e => e.innerText),
    error_outputs: [...document.querySelectorAll('.output.error, .output.stream.stderr, .output .ansi-red-fg')]
                      .map(e => e.innerText.slice(0, 300)),
    code: [...document.querySelectorAll('pre')].map(e => e.innerText),
    named: [...main.querySelectorAll('code, h2, h3, h4')].map(e => e.innerText),
    ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name')),
    hrefs: [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href')),
    srcs: [...document.querySelectorAll('[src]')].map(e => e.getAttribute('src')),
    nav: [...document.querySelectorAll('nav.sidebar a')].map(a => [a.getAttribute('href'), a.getAttribute('aria-current')]),
    diagrams: [...document.querySelectorAll('figure.diagram')].map(f => ({
        svg: !!f.querySelector('svg'), source_only: !!f.querySelector('pre.mermaid-source'),
        text: (f.querySelector('svg') || {}).textContent || ''})),
    tables: document.querySelectorAll('main table').length,
  };
}"""

@pytest.fixture(scope='module')
def docs_visits(docs_build, docs_server, docs_browser):
    "Open every page once; return {page: collected facts}."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob('*.png'): old.unlink()
    ctx = docs_browser.new_context(viewport={'width': 1400, 'height': 1000})
    ctx.route(re.compile(r'^(?!http://127\.0\.0\.1[:/]).*'), lambda route: route.abort())  # nothing leaves the machine
    visits = {}
    try:
        for name in docs_build.pages:
            page, errors, failed = ctx.new_page(), [], []
            page.on('console', lambda m, errors=errors: m.type == 'error' and errors.append(m.text))
            page.on('pageerror', lambda e, errors=errors: errors.append(f'pageerror: {e}'))
            page.on('requestfailed', lambda r, failed=failed: failed.append(f'{r.url} ({r.failure})'))
            page.on('response', lambda r, failed=failed: r.status >= 400 and failed.append(f'{r.url} -> {r.status}'))
            page.goto(f'{docs_server}/{name}', wait_until='load')
            if page.locator('pre.mermaid').count():
                try: page.wait_for_function("""() => [...document.querySelectorAll('pre.mermaid')]
                                               .every(e => e.querySelector('svg'))""", timeout=20_000)
                except Exception as e: errors.append(f'mermaid did not render: {e}')
            info = page.evaluate(COLLECT_JS)
            page.screenshot(path=str(ARTIFACTS/f'{name[:-5]}.png'), full_page=True)
            info.update(console_errors=errors, failed_requests=failed)
            visits[name] = info
            page.close()
    finally: ctx.close()
    return visits

# ------------------------------------------------------------------ tests
def test_every_notebook_has_a_page(docs_build):
    missing = [f'{nb.name} -> {page_of(nb)}' for nb in source_notebooks() if page_of(nb) not in docs_build.pages]
    assert not missing, f'notebooks without a rendered page: {missing}'
    assert 'index.html' in docs_build.pages and (DOCS/'style.css').exists()

def test_titles(docs_visits):
    bad = {n: (v['title'], v['h1']) for n, v in docs_visits.items()
           if not v['title'].strip() or v['title'].strip() != v['h1'].strip()}
    assert not bad, f'pages whose <title> is empty or is not their H1: {bad}'
    for nb in source_notebooks():    # the title is the notebook's own title, not its file name
        assert docs_visits[page_of(nb)]['title'] not in (nb.stem, page_of(nb)), nb.name

def test_navigation_links_every_page(docs_build, docs_visits):
    order = ['index.html'] + [page_of(nb) for nb in source_notebooks() if page_of(nb) != 'index.html']
    for name, v in docs_visits.items():
        hrefs = [h for h, _ in v['nav']]
        assert hrefs == order, f'{name}: navigation {hrefs} != {order}'
        assert [h for h, cur in v['nav'] if cur == 'page'] == [name], f'{name}: current page not marked'

def test_no_error_output(docs_visits):
    problems = []
    for name, v in docs_visits.items():
        if v['error_outputs']: problems.append(f"{name}: error/stderr output: {v['error_outputs']}")
        if ERROR_TEXT[0].search(v['text']): problems.append(f'{name}: a traceback in the page')
        for o in v['outputs']:
            if (m := ERROR_TEXT[1].search(o)): problems.append(f'{name}: error in an output: {m.group(0)!r} in {o[:200]!r}')
        if (m := ERROR_TEXT[2].search(v['text'])): problems.append(f'{name}: mermaid error {m.group(0)!r}')
    assert not problems, '\n'.join(problems)

def test_no_unrendered_markup(docs_visits):
    "Markdown from show_doc and cells was rendered, and no nbdev/Quarto directive leaked into code."
    problems = []
    for name, v in docs_visits.items():
        for pat, what in [(r'^\s*\|\s*-{3,}', 'a raw markdown table'), (r'^#{2,6} \S', 'a raw markdown heading'),
                          (r'^```', 'a raw code fence'), (r'^---$', 'raw frontmatter')]:
            if re.search(pat, v['prose'], re.M): problems.append(f'{name}: {what} in the text')
        for c in v['code']:
            if re.search(r'^\s*#\|', c, re.M): problems.append(f'{name}: a `#|` directive shown in code: {c[:120]!r}')
            if re.search(r'^\s*show_doc\(', c, re.M): problems.append(f'{name}: a show_doc cell shown as code')
    assert not problems, '\n'.join(problems)

def test_no_console_errors(docs_visits):
    bad = {n: v['console_errors'] + v['failed_requests'] for n, v in docs_visits.items()
           if v['console_errors'] or v['failed_requests']}
    assert not bad, f'JS console errors or failed requests: {bad}'

def test_public_names_documented(docs_visits):
    problems, checked = [], 0
    for nb in source_notebooks():
        mod = default_exp(nb)
        if not mod: continue
        try: m = importlib.import_module(f'fh_saas.{mod}')
        except Exception as e: problems.append(f'{nb.name}: cannot import fh_saas.{mod}: {e!r}'); continue
        names = list(getattr(m, '__all__', []))
        named = docs_visits[page_of(nb)]['named']   # inline code and headings: a name as code, not a word in prose
        missing = [n for n in names if not any(re.search(rf'(?<!\w){re.escape(n)}(?!\w)', t) for t in named)]
        checked += len(names)
        if missing: problems.append(f'{page_of(nb)} (fh_saas.{mod}) does not mention: {missing}')
    assert not problems, '\n'.join(problems)
    assert checked, 'no module page was checked'

def test_internal_links_resolve(docs_visits):
    problems = []
    ids = {n: set(v['ids']) for n, v in docs_visits.items()}
    for name, v in docs_visits.items():
        for h in v['hrefs'] + v['srcs']:
            u = urlsplit(h)
            if u.scheme or u.netloc: continue                 # external (never fetched: the browser blocks it)
            path, anchor = unquote(u.path), unquote(u.fragment)
            target = path or name
            if target.endswith(('.ipynb', '.qmd', '.md')):
                problems.append(f'{name}: unresolved notebook link {h!r}'); continue
            if path and not (DOCS/path).resolve().is_relative_to(DOCS.resolve()):
                problems.append(f'{name}: link outside the site {h!r}'); continue
            if not (DOCS/target).is_file(): problems.append(f'{name}: broken link {h!r}'); continue
            if anchor and target.endswith('.html') and anchor not in ids.get(target, set()):
                problems.append(f'{name}: missing anchor {h!r}')
    assert not problems, '\n'.join(problems)

def test_diagrams_rendered(docs_visits):
    vendored = (DOCS/'mermaid.min.js').exists()
    for nb in source_notebooks():
        n, v = mermaid_fences(nb), docs_visits[page_of(nb)]
        assert len(v['diagrams']) == n, f'{nb.name}: {n} mermaid block(s) but {len(v["diagrams"])} diagram(s) on the page'
        for d in v['diagrams']:
            if vendored: assert d['svg'] and d['text'].strip(), f'{page_of(nb)}: a diagram was not drawn'
            else: assert d['source_only'], f'{page_of(nb)}: diagram neither drawn nor shown as source'

def test_screenshots(docs_visits):
    for name in docs_visits:
        p = ARTIFACTS/f'{name[:-5]}.png'
        assert p.exists() and p.stat().st_size > 5_000, p
