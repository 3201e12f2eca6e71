"""The rendered docs (issue 12's "Done when"), read in a real browser.

`.ci/site/build.py` (Sphinx + MyST-NB + Furo) builds `_docs/` once per module; a ThreadingHTTPServer serves it on
127.0.0.1 and headless Chromium (Python Playwright driving Debian's /usr/bin/chromium) opens every page once at
1280x900 and once at 390x844, each viewport in one browser context that aborts every request not to 127.0.0.1 (so
the site is proven to work offline), and searches. Facts are collected with `page.evaluate` in the fixture
`site_visits`; the tests below only assert on them. Pages reached only through links (the `_modules/` source pages
behind [source], the index of names) are read from disk for their links and anchors. Screenshots (full page at 1280
as JPEG, the viewport at 390 as PNG) and the collected facts (facts.json) go to tests/artifacts/docs/.

The page list comes from `nbs/` (nbdev's page names), the navigation from the rendered sidebar and the modules from
each notebook's `#| default_exp`: nothing here reads the build script's internals.
"""
import importlib, inspect, json, os, posixpath, re, socket, subprocess, sys, threading, time
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS = ROOT/'nbs', ROOT/'_docs'
BUILD = ROOT/'.ci'/'site'/'build.py'
ARTIFACTS = ROOT/'tests'/'artifacts'/'docs'
SKIP_PREFIXES = ('_', '.', 'test_')
VIEWPORTS = {'desktop': dict(width=1280, height=900), 'phone': dict(width=390, height=844)}
JPEG_MAX_PX = 65_000  # the tallest full-page JPEG screenshot taken (the format's limit is 65,535 px)
NAV_GROUPS = ['Get started', 'Guides', 'Reference', 'Benchmarks']
MAX_EXTRA_PAGES = 200         # pages reached only through links (source pages, genindex...): read, not opened

# ------------------------------------------------------------------ helpers (independent of the build script)
def nb_cells(p:Path):
    "(cell type, source) of each cell of notebook `p`."
    for c in json.loads(p.read_text()).get('cells', []):
        s = c.get('source', '')
        yield c.get('cell_type'), (''.join(s) if isinstance(s, list) else s)

def source_notebooks() -> list[Path]:
    return [p for p in sorted(NBS.glob('*.ipynb')) if not p.name.startswith(SKIP_PREFIXES)]

def page_of(nb:Path) -> str:
    "The page nbdev publishes a notebook as: `04_utils_bgtsk.ipynb` -> `utils_bgtsk.html`, `index.ipynb` -> `index.html`."
    from nbdev.config import nbpath2html
    return 'index.html' if nb.stem == 'index' else nbpath2html(nb).name

_re_dir = re.compile(r'^\s*#\|\s*(.*?)\s*$', re.M)
def directives(src:str) -> list[str]: return _re_dir.findall(src)

def default_exp(nb:Path) -> str|None:
    for ct, s in nb_cells(nb):
        if ct == 'code' and (m := re.search(r'^\s*#\|\s*default_exp\s+(\S+)', s, re.M)): return m.group(1)

HIDDEN = re.compile(r'^(hide|export|exporti|default_exp)\b|^include:\s*false')
def visible_code_cells(nb:Path) -> list[str]:
    "Code cells a reader sees: not hidden, not exported (`#| exports` shows its code), not a `show_doc`, not empty."
    out = []
    for ct, s in nb_cells(nb):
        if ct != 'code': continue
        body = _re_dir.sub('', s).strip()
        if not body or any(HIDDEN.match(d) for d in directives(s)): continue
        if re.match(r'show_doc\(', body): continue
        out.append(body)
    return out

def exported_defs(nb:Path) -> set[str]:
    "Names a notebook's exported cells define at top level (`def`, `class`, assignments)."
    names = set()
    for ct, s in nb_cells(nb):
        if ct != 'code' or not any(re.match(r'export', d) for d in directives(s)): continue
        names |= set(re.findall(r'^(?:async\s+def|def|class)\s+(\w+)', s, re.M))
        for lhs in re.findall(r'^([A-Za-z_][\w\s,]*?)\s*(?::[^=\n]+)?=(?!=)', s, re.M):
            names |= {n.strip() for n in lhs.split(',') if n.strip().isidentifier()}
    return names

def module_pages() -> dict[str, str]:
    "{module (as `default_exp` names it): its page}"
    return {m: page_of(nb) for nb in source_notebooks() if (m := default_exp(nb))}

def home_module(name:str, obj, mod:str, defs:dict[str, set[str]]) -> str:
    "The module whose page documents `name` (exported by `mod`): where a class or function is defined, else the first module whose notebook defines it."
    if inspect.isclass(obj) or inspect.isroutine(obj):
        m = getattr(obj, '__module__', '') or ''
        if m.startswith('fh_saas.') and m[len('fh_saas.'):] in defs: return m[len('fh_saas.'):]
    if name in defs.get(mod, ()): return mod
    return next((m for m, names in defs.items() if name in names), mod)

def resolve_entry(full:str):
    "The object an API entry id (`fh_saas.mod.Class.meth`) names, or None."
    parts = full.split('.')
    for i in range(len(parts), 1, -1):
        try: obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError: continue
        try:
            for p in parts[i:]: obj = inspect.getattr_static(obj, p) if isinstance(obj, type) else getattr(obj, p)
        except AttributeError: return None
        if isinstance(obj, (staticmethod, classmethod)): obj = obj.__func__
        return obj
    return None

def norm(s:str) -> str:
    "Letters and digits only: compares a comment with its rendering (markdown, smart quotes, line breaks aside)."
    return re.sub(r'[^0-9a-z]+', '', s.lower())

def resolve_link(page:str, ref:str):
    "(target file relative to _docs, fragment) for a link on `page`, or None for an external or special link."
    u = urlsplit(ref)
    if u.scheme or u.netloc or ref.startswith(('data:', 'javascript:', 'mailto:')): return None
    path = unquote(u.path)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path)) if path else page
    if path.endswith('/') or target == '.': target = posixpath.join(target, 'index.html') if target != '.' else 'index.html'
    return target, unquote(u.fragment)

# Real error output, not prose naming an exception: a traceback, or a line that *is* an exception or a warning.
TRACEBACK = re.compile(r'Traceback \(most recent call last\)')
EXC_LINE = re.compile(r'^(?:\S+\.py:\d+: )?[A-Za-z_][\w.]*(?:Error|Exception|Warning|Interrupt|Exit): ', re.M)
MERMAID_ERROR = re.compile(r'Syntax error in text|Parse error on line|Lexical error', re.I)
MACHINE = [(re.compile(r'at 0x[0-9a-f]+'), 'a memory address'), (re.compile(r'\bvm:\w'), 'a worker id'),
           (re.compile(r'(?<![\w.])/(?:work|tmp|root|home)/'), 'an absolute path')]

class Facts(SimpleNamespace):
    "What the fixtures collected; short in failure reports."
    def __repr__(self): return f"<{', '.join(f'{k}: {len(v)}' if isinstance(v, (dict, list)) else k for k, v in vars(self).items())}>"

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

# ------------------------------------------------------------------ what each page is asked (one evaluate per visit)
FACTS_JS = r"""async () => {
  const W = window.innerWidth, doc = document.documentElement;
  const cs = e => getComputedStyle(e);
  const scrollsX = e => !!e && ['auto', 'scroll'].includes(cs(e).overflowX);
  const clipsX = (e, upto) => { for (let a = e.parentElement; a && a !== upto && a !== document.body && a !== doc; a = a.parentElement)
                                  if (cs(a).overflowX !== 'visible') return true; return false; };
  const shown = e => e.getClientRects().length > 0;
  const clean = e => { if (!e) return ''; const c = e.cloneNode(true);
                       c.querySelectorAll('.headerlink, .viewcode-link').forEach(x => x.remove());
                       return (c.textContent || '').replace(/\s+/g, ' ').trim(); };
  const describe = e => { const r = e.getBoundingClientRect();
    return `<${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.classList.length ? '.' + [...e.classList].join('.') : ''}>`
         + ` ${Math.round(r.left)}..${Math.round(r.right)} px "${(e.innerText || e.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 60)}"`; };

  // images: load them all (lazy ones too), at most 5 s
  const imgs = [...document.images];
  imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
  await Promise.race([Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); }))),
                      new Promise(r => setTimeout(r, 5000))]);
  // the icon the page declares (a browser asks for it): its HTTP status
  const icons = [];
  for (const l of document.querySelectorAll('link[rel~="icon"]')) {
    try { icons.push([l.getAttribute('href'), (await fetch(l.href)).status]); } catch (e) { icons.push([l.getAttribute('href'), 0]); }
  }

  // sideways scroll: of the document, or of a column that holds the whole page (Furo lets `.content` scroll on phones);
  // with the outermost elements that stick out past its edge, unclipped
  const sideways = [];
  const columns = [doc, ...[...document.querySelectorAll('.page, .main, .content, .article-container, article, main')].filter(scrollsX)];
  for (const c of columns) {
    const over = c === doc ? doc.scrollWidth - W : c.scrollWidth - c.clientWidth;
    if (over <= 0) continue;
    const upto = c === doc ? null : c, edge = c === doc ? W : c.getBoundingClientRect().left + c.clientWidth;
    const culprits = [];
    for (const e of (c === doc ? document.body : c).querySelectorAll('*')) {
      const r = e.getBoundingClientRect();
      if (!r.width || r.right <= edge + 0.5 || clipsX(e, upto)) continue;
      const p = e.parentElement;
      if (p && p !== c && p.getBoundingClientRect().right > edge + 0.5 && !clipsX(p, upto)) continue;
      culprits.push([Math.round(r.right), describe(e)]);
    }
    culprits.sort((a, b) => b[0] - a[0]);
    sideways.push({box: c === doc ? 'the document' : describe(c).slice(0, 60), by: over, widest: culprits.slice(0, 3).map(x => x[1])});
  }
  // code blocks wider than their box must scroll inside their own block
  const pre_bad = [];
  for (const p of document.querySelectorAll('pre')) {
    if (p.classList.contains('mermaid') || !shown(p)) continue;
    const par = p.parentElement;
    const wide = p.scrollWidth > p.clientWidth + 1 || p.getBoundingClientRect().width > par.clientWidth + 1;
    if (!wide) continue;
    const box = [p, par, par.parentElement].find(scrollsX);
    if (!box) pre_bad.push(describe(p) + ' is wider than its box, which does not scroll');
    else if (box.getBoundingClientRect().right > W + 1 && !clipsX(box, null)) pre_bad.push(describe(box) + ': scrolling box runs past the viewport');
  }
  // mermaid diagrams
  const diagrams = [...document.querySelectorAll('.mermaid')].map(m => {
    const svg = m.querySelector('svg'), r = (svg || m).getBoundingClientRect();
    let box = null;
    for (let a = m; a && a.tagName !== 'ARTICLE' && a !== document.body; a = a.parentElement) if (scrollsX(a)) { box = a; break; }
    const vb = svg && svg.viewBox && svg.viewBox.baseVal, scale = vb && vb.width ? r.width / vb.width : 1;
    const labels = svg ? [...svg.querySelectorAll('.nodeLabel, .edgeLabel, text')].filter(l => l.textContent.trim()) : [];
    const font = labels.length ? Math.min(...labels.map(l => parseFloat(cs(l).fontSize) * scale)) : null;
    const clipped = svg ? [...svg.querySelectorAll('foreignObject')].filter(fo => {
        const c = fo.firstElementChild; if (!c) return false;
        const a = fo.getBoundingClientRect(), b = c.getBoundingClientRect();
        return b.width > a.width + 1 || b.height > a.height + 1; }).map(fo => fo.textContent.trim().slice(0, 40)) : [];
    const words = svg ? (() => { const c = svg.cloneNode(true); c.querySelectorAll('style').forEach(x => x.remove());
                                 return c.textContent.replace(/\s+/g, ' ').trim(); })() : '';
    return {svg: !!svg, text: words.slice(0, 300), all_text: words + ' ' + (svg ? '' : m.textContent.slice(0, 2000)),
            width: Math.round(r.width), left: Math.round(r.left), right: Math.round(r.right),
            fits: r.left >= -1 && r.right <= W + 1,
            scrolls: !!box && box.getBoundingClientRect().right <= W + 1 && box.getBoundingClientRect().left >= -1,
            scale: Math.round(scale * 1000) / 1000, font_px: font === null ? null : Math.round(font * 10) / 10, clipped};
  });
  // copy buttons
  const blocks = [...document.querySelectorAll('div.highlight')].filter(d => d.querySelector('pre'));
  const no_copy = blocks.filter(d => !d.querySelector('button.copybtn')).map(d => describe(d.querySelector('pre')));

  // API entries
  const entries = [...document.querySelectorAll('dl.py > dt[id]')].map(dt => {
    const dl = dt.parentElement, dd = dt.nextElementSibling;
    const params = [];
    const fl = dd && dd.querySelector(':scope > dl.field-list');
    if (fl) for (const fdt of fl.querySelectorAll(':scope > dt')) {
      if (!/^Param/i.test(fdt.textContent.trim())) continue;
      const fdd = fdt.nextElementSibling;
      const items = fdd.querySelectorAll('li').length ? fdd.querySelectorAll('li') : fdd.querySelectorAll(':scope > p');
      for (const it of items) params.push([((it.querySelector('strong') || {}).textContent || '').trim(), it.textContent.replace(/\s+/g, ' ').trim()]);
    }
    const src = dt.querySelector('.viewcode-link');
    return {id: dt.id, kind: [...dl.classList].filter(c => c !== 'py').join(' '), sig: clean(dt),
            name: ((dt.querySelector('.sig-name') || {}).textContent || '').trim(),
            has_paren: !!dt.querySelector('.sig-paren'), source: src ? src.closest('a').getAttribute('href') : null,
            params, dd: dd ? dd.textContent.replace(/\s+/g, ' ').trim().slice(0, 4000) : ''};
  });
  // per-page contents ("On this page")
  const toc = [...document.querySelectorAll('.toc-tree a')].map(a => {
    const href = a.getAttribute('href') || '', frag = decodeURIComponent(href.replace(/^[^#]*#?/, ''));
    const el = frag ? document.getElementById(frag) : document.querySelector('article h1, h1');
    let kind = null, target = '';
    if (el) {
      const h = /^H[1-6]$/.test(el.tagName) ? el : (el.tagName === 'SECTION' ? el.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4, :scope > h5, :scope > h6') : null);
      if (h) { kind = 'heading'; target = clean(h); }
      else if (el.tagName === 'DT') { kind = 'entry'; target = ((el.querySelector('.sig-name') || {}).textContent || '').trim(); }
      else { kind = el.tagName.toLowerCase(); target = clean(el).slice(0, 60); }
    }
    return {href, text: a.textContent.replace(/\s+/g, ' ').trim(), found: !!el, kind, target, visible: el ? shown(el) : false};
  });
  const headings = [...document.querySelectorAll('article h2, article h3, article h4')].filter(h => !h.closest('.cell_output')).length;
  // outputs
  const outputs = [...document.querySelectorAll('.cell_output')].map(o => ({
    text: o.innerText.trim().slice(0, 3000), media: !!o.querySelector('img, svg, table, iframe, canvas'),
    stderr: [...o.querySelectorAll('.stderr')].map(s => s.innerText.slice(0, 3000)),
    error: [...o.querySelectorAll('.traceback, .error, .output.error')].map(s => s.innerText.slice(0, 500))}));

  return {
    title: document.title, h1: clean(document.querySelector('h1')),
    scroll_width: doc.scrollWidth, inner_width: W, sideways, pre_bad, diagrams,
    code_blocks: blocks.length, no_copy, copy_buttons: document.querySelectorAll('button.copybtn').length,
    entries, toc, headings, outputs, cells: document.querySelectorAll('.cell').length,
    sidebar: {captions: [...document.querySelectorAll('.sidebar-tree .caption-text')].map(e => e.textContent.trim()),
              links: [...document.querySelectorAll('.sidebar-tree li.toctree-l1 > a')].map(a => a.getAttribute('href'))},
    next: (document.querySelector('.related-pages a.next-page') || {getAttribute: () => null}).getAttribute('href'),
    prev: (document.querySelector('.related-pages a.prev-page') || {getAttribute: () => null}).getAttribute('href'),
    images: imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, alt: i.alt})), icons,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id).concat([...document.querySelectorAll('a[name]')].map(e => e.getAttribute('name'))),
    hrefs: [...document.querySelectorAll('[href]')].map(e => e.getAttribute('href')),
    srcs: [...document.querySelectorAll('[src]')].map(e => e.getAttribute('src')),
  };
}"""

MERMAID_DONE_JS = """() => [...document.querySelectorAll('.mermaid')].every(e => {
  if (e.hasAttribute('data-mermaid-render-failed')) return true;
  const svg = e.querySelector('svg');
  if (e.getAttribute('data-processed') !== 'true' || !svg) return false;
  const c = svg.cloneNode(true); c.querySelectorAll('style').forEach(x => x.remove());
  return c.textContent.trim().length > 0; })"""

SEARCH_DONE_JS = """() => { const r = document.getElementById('search-results');
  return !!r && (r.querySelectorAll('ul.search li').length > 0 || /finished|did not match|no results/i.test(r.innerText)); }"""

# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope='module')
def site():
    """Build the site once (the build script as a subprocess); fail with the tail of its output if it fails.
    `.ci/test` builds it just before pytest and sets FH_SAAS_DOCS_PREBUILT=1: that build is used as it is."""
    t = time.time()
    if os.environ.get('FH_SAAS_DOCS_PREBUILT') == '1' and (DOCS/'index.html').exists():
        r = subprocess.CompletedProcess([], 0, 'prebuilt by .ci/test', '')
    else: r = subprocess.run([sys.executable, str(BUILD)], cwd=ROOT, capture_output=True, text=True, timeout=400)
    secs = time.time() - t
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS/'build.log').write_text(f'exit {r.returncode} in {secs:.1f} s\n{r.stdout}\n{r.stderr}')
    if r.returncode: pytest.fail(f'docs build failed (exit {r.returncode}) in {secs:.0f} s:\n{(r.stdout + r.stderr)[-5000:]}')
    nbs = source_notebooks()
    return Facts(notebooks=nbs, pages=[page_of(nb) for nb in nbs], seconds=secs)

@pytest.fixture(scope='module')
def docs_server(site):
    srv = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(DOCS)))
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown(); srv.server_close()

class Tab:
    "One browser page per viewport, reused for every visit; what goes wrong is recorded against the page being opened."
    def __init__(self, ctx):
        self.page, self.errors, self.failed = ctx.new_page(), [], []
        self.page.on('console', lambda m: m.type == 'error' and self.errors.append(f'console: {m.text}'))
        self.page.on('pageerror', lambda e: self.errors.append(f'pageerror: {e}'))
        self.page.on('requestfailed', lambda r: self._failed(r))
        self.page.on('response', lambda r: r.status >= 400 and self.failed.append(f'{r.url} -> HTTP {r.status}'))

    def _failed(self, r):
        "Record a failed request, but not the browser's own favicon fetch for a page it is leaving, aborted by the next `goto`."
        # the icon itself is still checked: FACTS_JS fetches each declared icon, and a 404 shows as a response
        if r.failure == 'net::ERR_ABORTED' and '/favicon.' in r.url: return
        self.failed.append(f'{r.url} ({r.failure})')

    def visit(self, url:str, shot:Path|None=None, full_page=False) -> dict:
        "Open `url`; return its facts (FACTS_JS) and what went wrong while loading it."
        page, t0 = self.page, time.time()
        self.errors, self.failed = errors, failed = [], []
        try:
            page.goto(url, wait_until='load')
            if page.locator('.mermaid').count():
                try: page.wait_for_function(MERMAID_DONE_JS, timeout=20_000)
                except Exception as e: errors.append(f'mermaid did not finish: {str(e)[:200]}')
            info = page.evaluate(FACTS_JS)
            if shot is not None:
                kw = dict(type='jpeg', quality=70) if shot.suffix == '.jpg' else {}
                if full_page and shot.suffix == '.jpg' and page.evaluate('document.documentElement.scrollHeight') > JPEG_MAX_PX:
                    # a JPEG is at most 65,535 px high: Chromium writes an empty file for a taller page, so its top
                    kw['clip'] = dict(x=0, y=0, width=page.viewport_size['width'], height=JPEG_MAX_PX)
                page.screenshot(path=str(shot), full_page=full_page, **kw)
        except Exception as e:
            info = dict(load_error=f'{type(e).__name__}: {str(e)[:500]}')
        info.update(errors=errors, failed=failed, secs=round(time.time() - t0, 2))
        return info

    def search(self, base:str, q:str) -> dict:
        page = self.page
        self.errors, self.failed = errors, failed = [], []
        results = []
        try:
            page.goto(f'{base}/search.html?q={q}', wait_until='load')
            try: page.wait_for_function(SEARCH_DONE_JS, timeout=20_000)
            except Exception as e: errors.append(f'search did not finish: {str(e)[:200]}')
            results = page.evaluate("""() => [...document.querySelectorAll('#search-results ul.search li')].map(li => {
                const a = li.querySelector('a'); return [a ? a.getAttribute('href') : null, li.innerText.replace(/\\s+/g, ' ').trim().slice(0, 200)]; })""")
            page.screenshot(path=str(ARTIFACTS/f'search-{q}.png'))
        except Exception as e: errors.append(f'{type(e).__name__}: {str(e)[:500]}')
        return dict(results=results, errors=errors, failed=failed)

class _Links(HTMLParser):
    "hrefs, srcs and ids of a page only reached through links (source pages, the index of names): read, not opened."
    def __init__(self):
        super().__init__(); self.hrefs, self.srcs, self.ids = [], [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('href') is not None: self.hrefs.append(a['href'])
        if a.get('src') is not None: self.srcs.append(a['src'])
        if a.get('id'): self.ids.append(a['id'])
        if tag == 'a' and a.get('name'): self.ids.append(a['name'])

def read_links(path:Path) -> dict:
    p = _Links(); p.feed(path.read_text(errors='replace'))
    return dict(hrefs=p.hrefs, srcs=p.srcs, ids=p.ids)

@pytest.fixture(scope='module')
def site_visits(site, docs_server, chromium):
    """Open every notebook's page at 1280x900 and at 390x844 (one context per viewport, nothing allowed off
    127.0.0.1) and search; read the pages only linked from them. Facts(desktop={page: facts}, phone={page: facts},
    extra={path: links and ids}, search={results, errors, failed})."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob('*.png'), *ARTIFACTS.glob('*.jpg')]: old.unlink()
    out = Facts(desktop={}, phone={}, extra={}, search=None)
    for vp, size in VIEWPORTS.items():
        ctx = chromium.new_context(viewport=size)
        ctx.route(re.compile(r'^(?!http://127\.0\.0\.1[:/]).*'), lambda route: route.abort())  # nothing leaves the machine
        try:
            tab, seen = Tab(ctx), getattr(out, vp)
            for name in site.pages:
                if not (DOCS/name).is_file(): continue
                shot = ARTIFACTS/f'{name[:-5]}-{size["width"]}.{"jpg" if vp == "desktop" else "png"}'
                seen[name] = tab.visit(f'{docs_server}/{name}', shot, full_page=vp == 'desktop')
            if vp == 'desktop': out.search = tab.search(docs_server, 'submit')
        finally: ctx.close()
    todo = [t for n, v in out.desktop.items() for h in v.get('hrefs', []) if (t := resolve_link(n, h))]
    while todo and len(out.extra) < MAX_EXTRA_PAGES:
        target, _ = todo.pop(0)
        if not target.endswith('.html') or target in out.desktop or target in out.extra or not (DOCS/target).is_file(): continue
        out.extra[target] = v = read_links(DOCS/target)
        todo += [t for h in v['hrefs'] if (t := resolve_link(target, h))]
    (ARTIFACTS/'facts.json').write_text(json.dumps(vars(out), indent=1, default=str))   # what the tests saw
    return out

def _all(visits) -> dict:
    "Every page's links and anchors: the notebooks' (as opened at 1280) and the pages only linked from them."
    return {**visits.desktop, **visits.extra}

# ------------------------------------------------------------------ 1. pages
def test_every_notebook_has_a_page(site):
    missing = [f'{nb.name} -> {p}' for nb, p in zip(site.notebooks, site.pages) if not (DOCS/p).is_file()]
    assert not missing, f'notebooks without a page: {missing}'
    assert len(site.pages) >= 10, site.pages

def test_cell_ids_are_unique_in_each_notebook():
    "The exported modules name their source cell by id (`# %% ../nbs/X.ipynb #id`): one id, one cell."
    dup = {}
    for nb in sorted(NBS.glob('*.ipynb')):
        ids = [c.get('id') for c in json.loads(nb.read_text())['cells']]
        if d := sorted({i for i in ids if ids.count(i) > 1}): dup[nb.name] = d
    assert not dup, f'cell ids used twice: {dup}'

def test_pages_open_without_errors(site_visits):
    "No console error, page error, failed request or HTTP status >= 400 (the favicon included), at both widths."
    problems = []
    for vp in VIEWPORTS:
        for name, v in getattr(site_visits, vp).items():
            for p in [v.get('load_error')] + v['errors'] + v['failed']:
                if p: problems.append(f'{name} @{vp}: {p}')
            if 'load_error' not in v and not v['icons']: problems.append(f'{name} @{vp}: no icon declared')
            for href, status in v.get('icons', []):
                if not 200 <= status < 400: problems.append(f'{name} @{vp}: icon {href} -> {status}')
    assert not problems, '\n'.join(problems)
    assert set(site_visits.desktop) == set(site_visits.phone) and site_visits.desktop

# ------------------------------------------------------------------ 2. phones
def test_no_sideways_scroll_at_390(site_visits):
    "Neither the document nor the column holding the page scrolls sideways at 390 px (scrollWidth <= innerWidth)."
    bad = [f"{n}: {s['box']} scrolls sideways by {s['by']} px (scrollWidth {v['scroll_width']}, innerWidth {v['inner_width']}); "
           f"widest: {s['widest']}" for n, v in site_visits.phone.items() for s in v.get('sideways', [])]
    bad += [f"{n}: scrollWidth {v['scroll_width']} > innerWidth {v['inner_width']}" for n, v in site_visits.phone.items()
            if v.get('scroll_width', 0) > v.get('inner_width', 390) and not v.get('sideways')]
    assert not bad, 'pages that scroll sideways at 390 px:\n' + '\n'.join(bad)

def test_code_scrolls_inside_its_block(site_visits):
    bad = [f'{n} @{vp}: {p}' for vp in VIEWPORTS for n, v in getattr(site_visits, vp).items() for p in v.get('pre_bad', [])]
    assert not bad, '\n'.join(bad[:40]) + (f'\n... {len(bad)} in all' if len(bad) > 40 else '')

# ------------------------------------------------------------------ 3. search
def test_search_finds_submit(site_visits):
    s = site_visits.search
    assert not s['errors'] and not s['failed'], s['errors'] + s['failed']
    want = 'utils_bgtsk.html#fh_saas.utils_bgtsk.BackgroundTaskManager.submit'
    def plain(h):   # the link without a query (`?highlight=` in older Sphinx)
        u = urlsplit(h or ''); return u.path + (f'#{u.fragment}' if u.fragment else '')
    ok = any(plain(h) == want for h, _ in s['results']) \
         or any(plain(h).startswith('utils_bgtsk.html') and 'submit' in plain(h) + t for h, t in s['results'])
    assert ok, f'search for "submit" does not find {want}; results: {s["results"][:15]}'

# ------------------------------------------------------------------ 4. contents
def test_contents_links_land_on_headings(site_visits):
    problems = []
    for n, v in site_visits.desktop.items():
        if 'toc' not in v: continue
        if v['headings'] and not v['toc']: problems.append(f'{n}: {v["headings"]} headings but no contents')
        for t in v['toc']:
            if not t['found']: problems.append(f"{n}: contents link {t['href']!r} ({t['text']!r}) has no target"); continue
            if t['kind'] not in ('heading', 'entry'):
                problems.append(f"{n}: contents link {t['href']!r} lands on a <{t['kind']}>, not a heading or API entry"); continue
            if not t['visible']: problems.append(f"{n}: contents link {t['href']!r} lands on a hidden element")
            want = t['text'].removesuffix('()') if t['kind'] == 'entry' else t['text']
            if norm(want) != norm(t['target']):
                problems.append(f"{n}: contents link {t['text']!r} lands on {t['kind']} {t['target']!r}")
        listed = {t['href'].split('#', 1)[-1] for t in v['toc']}
        unlisted = [e['id'] for e in v['entries'] if e['id'] not in listed]
        if unlisted: problems.append(f'{n}: API entries missing from the contents: {unlisted}')
    assert not problems, '\n'.join(problems)
    toc = [t['href'] for t in site_visits.desktop['utils_bgtsk.html']['toc']]
    for want in ('BackgroundTaskManager', 'BackgroundTaskManager.submit', 'TenantJob'):
        assert f'#fh_saas.utils_bgtsk.{want}' in toc, f'utils_bgtsk contents lacks {want}: {toc}'

# ------------------------------------------------------------------ 5. API reference
def _entries(visits) -> dict:
    "{entry id: (page, entry facts)} over the notebooks' pages."
    return {e['id']: (n, e) for n, v in visits.desktop.items() for e in v.get('entries', [])}

def test_public_names_documented(site_visits):
    "Every name in `__all__` of every module with a notebook has an entry with its signature on its defining module's page."
    pages = module_pages()
    defs = {default_exp(nb): exported_defs(nb) for nb in source_notebooks() if default_exp(nb)}
    entries, missing, unsigned, checked = _entries(site_visits), [], [], 0
    for mod in pages:
        m = importlib.import_module(f'fh_saas.{mod}')
        for name in getattr(m, '__all__', []):
            obj, checked = getattr(m, name), checked + 1
            home = home_module(name, obj, mod, defs)
            full, page = f'fh_saas.{home}.{name}', pages.get(home, '?')
            if full not in entries or entries[full][0] != page:
                msg = f'{full} on {page}' + (f', found on {entries[full][0]}' if full in entries else '')
                if msg not in missing: missing.append(msg)
                continue
            e = entries[full][1]
            if (inspect.isroutine(obj) or inspect.isclass(obj) and '__init__' in vars(obj)) and not e['has_paren']:
                unsigned.append(f"{full}: {e['sig']!r}")
    assert checked, 'no module was checked'
    assert not missing and not unsigned, (f'{len(missing)} public names without an entry:\n  ' + '\n  '.join(missing)
                                          + ('\nentries without a signature:\n  ' + '\n  '.join(unsigned) if unsigned else ''))

def test_classes_render_as_classes(site_visits):
    bad = []
    for full, (page, e) in _entries(site_visits).items():
        obj = resolve_entry(full)
        if inspect.isclass(obj):
            word = 'exception' if issubclass(obj, BaseException) else 'class'
            if not (e['sig'].startswith('class ') or e['sig'].startswith(f'{word} ')): bad.append(f"{page}: {e['sig'][:80]!r}")
    assert not bad, 'classes not rendered as classes:\n' + '\n'.join(bad)

def test_source_links(site_visits):
    """Every class, function and method entry has a [source] link to a page (and anchor) that exists; every [source]
    link shows this package's code (`_modules/fh_saas/...`), not another library's."""
    ids = {n: set(v.get('ids', [])) for n, v in _all(site_visits).items()}
    bad, n = [], 0
    for full, (page, e) in _entries(site_visits).items():
        if e['source']:
            target, frag = resolve_link(page, e['source'])
            if not target.startswith('_modules/fh_saas/'): bad.append(f"{page}: {full} ({e['kind']}): [source] shows {target}, not fh_saas code")
        if not re.search(r'\b(class|exception|function|method|classmethod|staticmethod)\b', e['kind']): continue
        n += 1
        if not e['source']: bad.append(f'{page}: {full} ({e["kind"]}) has no [source] link'); continue
        if not (DOCS/target).is_file(): bad.append(f"{page}: {full}: [source] -> missing {target}")
        elif frag and target in ids and frag not in ids[target]: bad.append(f"{page}: {full}: [source] -> {target}#{frag}: no such anchor")
    assert n, 'no API entries found'
    assert not bad, f'{len(bad)} of {n} entries:\n' + '\n'.join(bad)

# ------------------------------------------------------------------ 6. no value from the build machine
def test_no_build_machine_values_in_signatures(site_visits):
    host = socket.gethostname()
    pats = MACHINE + ([(re.compile(rf'(?<![\w-]){re.escape(host)}(?![\w-])'), f'the hostname {host!r}')] if len(host) > 1 else [])
    bad = [f"{page}: {full}: {what}: {e['sig'][:160]!r}" for full, (page, e) in _entries(site_visits).items()
           for p, what in pats if p.search(e['sig'])]
    assert not bad, '\n'.join(bad)

# ------------------------------------------------------------------ 7. parameter docs
def test_parameter_docs_beside_entries(site_visits):
    "Each commented parameter of a documented class, function or method has its comment in its own item of the entry."
    from fastcore.docments import docments
    problems, n = [], 0
    for full, (page, e) in _entries(site_visits).items():
        obj = resolve_entry(full)
        if not (inspect.isclass(obj) or inspect.isroutine(obj)): continue
        try: docs = docments(obj, full=True, args_kwargs=True)
        except Exception: continue
        items = {name.lstrip('*'): text for name, text in e['params']}
        for p, d in docs.items():
            if p in ('self', 'cls', 'return') or not d.get('docment'): continue
            n += 1
            if p not in items:
                where = ' (it is elsewhere in the entry)' if norm(d['docment']) in norm(e['dd']) else ''
                problems.append(f"{page}: {full}: parameter {p!r} not listed{where}: {d['docment'][:70]!r}")
            elif norm(d['docment']) not in norm(items[p]):
                problems.append(f"{page}: {full}: {p!r} reads {items[p][:80]!r}, not {d['docment'][:70]!r}")
    assert n > 20, f'only {n} documented parameters found'
    assert not problems, f'{len(problems)} of {n} parameter comments:\n' + '\n'.join(problems)
    for full, p in [('fh_saas.utils_bgtsk.BackgroundTaskManager.submit', '**task_kwargs'), ('fh_saas.ui.mount_jobs', '**kwargs')]:
        assert p in [name for name, _ in _entries(site_visits)[full][1]['params']], f'{full}: {p} not among its parameters'

# ------------------------------------------------------------------ 8. outputs
def test_pages_with_code_show_outputs(site, site_visits):
    bad = []
    for nb, page in zip(site.notebooks, site.pages):
        code = visible_code_cells(nb)
        v = site_visits.desktop.get(page, {})
        shown = [o for o in v.get('outputs', []) if o['text'] or o['media']]
        if code and not shown: bad.append(f'{page}: {len(code)} visible code cells ({v.get("cells")} on the page), no output')
    assert not bad, 'pages whose code shows no output:\n' + '\n'.join(bad)

# ------------------------------------------------------------------ 9. navigation
def _sidebar_order(visits) -> list[str]:
    links = visits.desktop['index.html']['sidebar']['links']
    return ['index.html' if h in ('#', '') else h.split('#')[0] for h in links]

def test_sidebar_groups_and_pages(site, site_visits):
    problems = []
    order = _sidebar_order(site_visits)
    for n, v in site_visits.desktop.items():
        if v.get('sidebar', {}).get('captions') != NAV_GROUPS:
            problems.append(f"{n}: sidebar groups {v.get('sidebar', {}).get('captions')} != {NAV_GROUPS}")
        mine = ['index.html' if h in ('#', '') and n == 'index.html' else (n if h in ('#', '') else h.split('#')[0])
                for h in v.get('sidebar', {}).get('links', [])]
        if mine != order: problems.append(f'{n}: sidebar {mine} differs from the index page\'s {order}')
    missing = [p for p in site.pages if p not in order]
    if missing: problems.append(f'pages not in the sidebar: {missing}')
    if len(order) != len(set(order)): problems.append(f'a page is twice in the sidebar: {order}')
    assert not problems, '\n'.join(problems)

def test_previous_next_chain(site_visits):
    order, problems = _sidebar_order(site_visits), []
    for i, p in enumerate(order):
        v = site_visits.desktop.get(p)
        if v is None: problems.append(f'{p}: in the sidebar but not a notebook page'); continue
        want_prev, want_next = (order[i-1] if i else None), (order[i+1] if i + 1 < len(order) else None)
        if v.get('prev') != want_prev: problems.append(f"{p}: previous -> {v.get('prev')}, expected {want_prev}")
        if v.get('next') != want_next: problems.append(f"{p}: next -> {v.get('next')}, expected {want_next}")
    assert not problems, '\n'.join(problems)

def test_copy_buttons(site_visits):
    problems = []
    for n, v in site_visits.desktop.items():
        if v.get('code_blocks') and v['no_copy']: problems.append(f"{n}: {len(v['no_copy'])} of {v['code_blocks']} code blocks without a copy button, e.g. {v['no_copy'][0]}")
    assert not problems, '\n'.join(problems)
    assert sum(v.get('copy_buttons', 0) for v in site_visits.desktop.values()), 'no copy button anywhere'

# ------------------------------------------------------------------ 10. links
def test_internal_links_resolve(site_visits):
    pages = _all(site_visits)
    ids = {n: set(v.get('ids', [])) for n, v in pages.items()}
    problems, n_links = [], 0
    for name, v in pages.items():
        for ref in v.get('hrefs', []) + v.get('srcs', []):
            if '.ipynb' in ref: problems.append(f'{name}: link to a notebook {ref!r}'); continue
            if (t := resolve_link(name, ref)) is None: continue
            target, frag = t
            n_links += 1
            if target.startswith('..') or not (DOCS/target).resolve().is_relative_to(DOCS.resolve()):
                problems.append(f'{name}: link outside the site {ref!r}'); continue
            if not (DOCS/target).is_file(): problems.append(f'{name}: broken link {ref!r}'); continue
            if frag and target.endswith('.html'):
                if target not in ids: ids[target] = set(re.findall(r'''\b(?:id|name)=["']([^"']+)["']''', (DOCS/target).read_text()))
                if frag not in ids[target]: problems.append(f'{name}: missing anchor {ref!r}')
    assert n_links > 100, n_links
    assert any(n.startswith('_modules/') for n in site_visits.extra), 'no source page reached through [source] links'
    problems = sorted(set(problems))
    assert not problems, f'{len(problems)} bad links:\n' + '\n'.join(problems[:80])

# ------------------------------------------------------------------ 11. diagrams
def test_diagrams_drawn(site_visits):
    problems, n = [], 0
    for vp in VIEWPORTS:
        for name, v in getattr(site_visits, vp).items():
            for i, d in enumerate(v.get('diagrams', [])):
                n += 1
                tag = f'{name} @{vp} diagram {i+1}'
                if not d['svg'] or not d['text']: problems.append(f'{tag}: not drawn')
                if MERMAID_ERROR.search(d['all_text']): problems.append(f'{tag}: mermaid error {MERMAID_ERROR.search(d["all_text"]).group(0)!r}')
                if d['clipped']: problems.append(f'{tag}: labels clipped: {d["clipped"]}')
                if vp == 'phone' and not (d['fits'] or d['scrolls']):
                    problems.append(f"{tag}: {d['left']}..{d['right']} px, neither fits 390 px nor scrolls in its own box")
    assert n, 'no diagram on any page'
    assert not problems, '\n'.join(problems)

MIN_DIAGRAM_FONT_PX = 10      # the smallest label text a reader can be asked to read, after the diagram is scaled

def test_diagram_labels_readable(site_visits):
    "Diagrams are readable (issue: 'Diagrams are readable'): labels are not scaled down below MIN_DIAGRAM_FONT_PX."
    small = [f"{n} @{vp} diagram {i+1}: labels drawn at {d['font_px']} px (scaled to {d['scale']:.0%}, {d['width']} px wide)"
             for vp in VIEWPORTS for n, v in getattr(site_visits, vp).items() for i, d in enumerate(v.get('diagrams', []))
             if d['font_px'] is not None and d['font_px'] < MIN_DIAGRAM_FONT_PX]
    assert not small, '\n'.join(small)

# ------------------------------------------------------------------ 12. error output
def test_no_error_output(site_visits):
    problems = []
    for name, v in site_visits.desktop.items():
        for o in v.get('outputs', []):
            if o['error']: problems.append(f'{name}: error output {o["error"][0][:200]!r}')
            if TRACEBACK.search(o['text']): problems.append(f'{name}: a traceback in an output: {o["text"][:200]!r}')
            for s in o['stderr']:
                if TRACEBACK.search(s) or EXC_LINE.search(s):
                    problems.append(f'{name}: an exception on stderr: {s[:200]!r}')
    assert not problems, '\n'.join(problems)

# ------------------------------------------------------------------ 13. index pictures
def test_index_shows_pictures(site_visits):
    imgs = site_visits.desktop['index.html'].get('images', [])
    shown = [i for i in imgs if i['w'] > 0 and re.match(r'(\./)?_?images/', i['src'] or '')]
    assert len(shown) >= 2, f'index.html shows {len(shown)} pictures from images/ (needs the dashboard and the live status): {imgs}'

# ------------------------------------------------------------------ 14. screenshots
def test_screenshots(site, site_visits):
    shots = [ARTIFACTS/f'{p[:-5]}-{w}.{ext}' for p in site.pages for w, ext in ((1280, 'jpg'), (390, 'png'))]
    missing = [f.name for f in shots if not (f.exists() and f.stat().st_size > 5_000)]
    assert not missing, f'screenshots missing or blank: {missing}'
