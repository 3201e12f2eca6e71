#!/usr/bin/env python3
"""Build the documentation site into `_docs/` with Sphinx (MyST-NB, Furo), offline.

The glue between nbdev and Sphinx; the site itself (pages, navigation, search, contents, API entries,
source pages, copy buttons) is Sphinx's, configured in `conf.py` beside this file.

1. Execute: every notebook in `nbs/` runs top to bottom (execnb, as `nbdev-test` does, but every cell,
   the PostgreSQL ones included) into `_build/exec/`, so each page shows outputs made by this build: an
   output can never be stale. Any error fails the build.
2. Process: nbdev's own processors (those `nbdev-proc-nbs` uses, less the two that target Quarto:
   executing `show_doc` cells and turning names into links to the published site) prepare each executed
   notebook: directives applied, hidden and exported cells removed, a `show_doc` cell added for every
   exported name, front matter collected.
3. Adapt for MyST-NB (`_build/src/<page>.ipynb`, `<page>` being nbdev's output name: `04_utils_bgtsk` ->
   `utils_bgtsk`): the front matter becomes the page's title and lead; each `show_doc(X)` becomes a Sphinx
   autodoc directive for `X` (classes with their methods, a `[source]` link each); names in backticks
   that have an API entry link to it; links between notebooks point at their pages.
4. Render: `sphinx-build -W` into `_docs/`: any warning (a broken link, a missing page, an entry that
   cannot be imported) fails the build.

Usage: `.venv/bin/python .ci/site/build.py` (or `bash .ci/docs`), then open `_docs/index.html`.
"""
from __future__ import annotations
import ast, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NBS, BUILD, DOCS = ROOT/'nbs', ROOT/'_build', ROOT/'_docs'
EXEC, SRC = BUILD/'exec', BUILD/'src'
MERMAID = ('mermaid', '11.12.1')   # the version sphinxcontrib-mermaid is written against; served from _static

def log(*a): print('[docs]', *a, flush=True)

def page_name(nb:Path) -> str:
    "nbdev's page name for a notebook: numeric prefix dropped (`04_utils_bgtsk.ipynb` -> `utils_bgtsk`)."
    from nbdev.config import nbpath2html
    return nbpath2html(nb).stem

def notebooks() -> list[Path]:
    return [p for p in sorted(NBS.glob('*.ipynb')) if not p.name.startswith(('_', '.', 'test_'))]

# ---------------------------------------------------------------- 1. execute
def execute(nb:Path) -> tuple[str, float, str|None]:
    "Run every cell of `nb` (working directory `nbs/`), writing it with its outputs to `_build/exec/`."
    os.environ['IN_TEST'] = '1'
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from fastcore.nbio import read_nb, write_nb
    t = time.time()
    sh = CaptureShell(nb)
    try:
        with working_directory(NBS):
            n = read_nb(nb)
            sh.run_all(n, exc_stop=True, cell_timeout=300)
        write_nb(n, EXEC/nb.name)
        return nb.name, time.time() - t, None
    except Exception as e:
        return nb.name, time.time() - t, (sh.prettytb(fname=nb) or f'{type(e).__name__}: {e}')

def execute_all(nbs:list[Path], workers:int) -> bool:
    EXEC.mkdir(parents=True, exist_ok=True)
    ok = True
    # a fresh process per notebook: notebooks start servers, set variables and import tasks of their own. Each is
    # forked from a server process that has imported the libraries every notebook needs (not fh_saas: a notebook
    # imports it itself), which saves each notebook a second of start-up
    import multiprocessing
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload(['execnb.shell', 'fasthtml.common', 'fastsql', 'sqlalchemy', 'psycopg', 'psycopg_pool',
                                'httpx', 'uvicorn', 'anyio'])
    with ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=1) as ex:
        for name, secs, err in ex.map(execute, nbs):
            log(f'executed {name} in {secs:.1f} s' + (' FAILED' if err else ''))
            if err: ok = False; print(err, file=sys.stderr)
    return ok

# ---------------------------------------------------------------- 2. process (nbdev)
def process(nb:Path):
    "nbdev's processors, less `exec_show_docs` (autodoc renders the entries) and `add_links` (links to the web)."
    from nbdev.processors import FilterDefaults, NBProcessor
    from fastcore.nbio import dict2nb
    skip = {'exec_show_docs', 'add_links'}
    procs = [p for p in FilterDefaults().procs() if p.__name__ not in skip]
    js = json.loads((EXEC/nb.name).read_text())
    if (mod := module_of(js['cells'])): add_data_docs(js, f'fh_saas.{mod}')
    n = dict2nb(js)
    n.path_ = str(nb)
    NBProcessor(nb=n, procs=procs, rm_directives='quarto').process()
    return json.loads(json.dumps(n, default=str))

_re_export = re.compile(r'^\s*#\|\s*exports?\s*$', re.M)
def add_data_docs(nb:dict, modname:str):
    "A `show_doc` cell after each exported cell for each public name it assigns (nbdev adds them for defs and classes)."
    import importlib
    public = set(getattr(importlib.import_module(modname), '__all__', []))
    cells = []
    for c in nb['cells']:
        cells.append(c)
        if c['cell_type'] != 'code' or not _re_export.search(text(c)): continue
        try: body = ast.parse(_re_directive.sub('', text(c))).body
        except SyntaxError: continue
        for node in body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            cells += [dict(cell_type='code', metadata={}, outputs=[], execution_count=None, source=f'show_doc({t.id})')
                      for t in targets if isinstance(t, ast.Name) and t.id in public]
    nb['cells'] = cells

# ---------------------------------------------------------------- 3. adapt for MyST-NB
def text(c) -> str: s = c.get('source') or ''; return ''.join(s) if isinstance(s, list) else s
def md(s:str) -> dict: return dict(cell_type='markdown', metadata={}, source=s)

KEYS = dict(markdown={'cell_type', 'id', 'metadata', 'source', 'attachments'},
            code={'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count'})
def clean(c:dict, i:int) -> dict:
    "Only the keys nbformat allows (nbdev's processors leave some of their own), and an id."
    c = {k: v for k, v in c.items() if k in KEYS.get(c['cell_type'], KEYS['markdown'])}
    c.setdefault('id', f'c{i:04d}')
    if c['cell_type'] == 'code': c.setdefault('outputs', []); c.setdefault('execution_count', None)
    return c

_re_directive = re.compile(r'^\s*#\|.*\n?', re.M)
_re_showdoc = re.compile(r'^show_doc\((.*)\)\s*$', re.S)

def showdoc_target(src:str) -> str|None:
    "`X.y` from a `show_doc(X.y)` cell."
    m = _re_showdoc.match(_re_directive.sub('', src).strip())
    if not m: return None
    call = ast.parse(f'f({m.group(1)})', mode='eval').body
    return ast.unparse(call.args[0])

def module_of(cells) -> str|None:
    for c in cells:
        if c['cell_type'] == 'code' and (m := re.search(r'^\s*#\|\s*default_exp\s+(\S+)', text(c), re.M)):
            return m.group(1)

def resolve(modname:str, dotted:str):
    "(full name, object, parent) for `dotted` in `modname`."
    import importlib
    mod = importlib.import_module(modname)
    parent, obj = None, mod
    for part in dotted.split('.'):
        parent, obj = obj, getattr(obj, part)
    return f'{modname}.{dotted}', obj, parent

def directive(full:str, obj, parent, documented:set[str]) -> str:
    "The autodoc directive that renders `obj` as `full`."
    import inspect
    last = full.rsplit('.', 1)[-1]
    if isinstance(obj, type):
        members = class_members(obj, full, documented)
        opts = f'\n   :members: {", ".join(members)}' if members else ''
        bases = [b for b in obj.__bases__ if b is not object]
        return f'.. autoclass:: {full}{opts}' + ('\n   :show-inheritance:' if bases else '')
    if isinstance(parent, type):
        static = inspect.getattr_static(parent, last)
        if isinstance(static, property): return f'.. autoproperty:: {full}'
        return f'.. automethod:: {full}'
    if callable(obj): return f'.. autofunction:: {full}'
    short = isinstance(obj, (bool, int, float)) or (isinstance(obj, (str, tuple)) and len(repr(obj)) <= 120)
    return f'.. autodata:: {full}' + ('' if short else '\n   :no-value:')   # a logger, a registry, SQL: no repr

def class_members(cls, full:str, documented:set[str]) -> list[str]:
    "Public methods and properties `cls` defines itself, less those with an entry of their own (`@patch`ed ones)."
    import inspect
    out = []
    for k, v in vars(cls).items():
        if k.startswith('_') or f'{full}.{k}' in documented: continue
        if isinstance(v, (staticmethod, classmethod)): v = v.__func__
        if isinstance(v, property) or (inspect.isfunction(v) and v.__qualname__.split('.')[0] == cls.__name__): out.append(k)
    return out

def adapt(nb:dict, pages:dict[str, str], api:dict[str, str]) -> dict:
    "Make an nbdev-processed notebook a MyST-NB page."
    cells, out = nb['cells'], []
    for c in cells:
        c.setdefault('metadata', {})
        if 'has_sd' in c: c['metadata']['has_sd'] = c.pop('has_sd')   # nbformat allows no extra cell keys
        c['metadata'].pop('execution', None)
        s = text(c)
        if c['cell_type'] == 'raw' and s.startswith('---'):
            import yaml
            fm = yaml.safe_load(s.strip().strip('-'))
            lead = f"\n\n{{.lead}}\n{fm['description']}" if fm.get('description') else ''
            out.append(md(f"# {fm['title']}{lead}\n"))
            continue
        if c['cell_type'] == 'code':
            if 'source' not in c or c.get('source') is None: continue    # hidden or exported: nbdev removed it
            if c['metadata'].get('has_sd') or showdoc_target(s):
                full = nb['metadata']['fh_targets'][showdoc_target(s)]
                out.append(md('```{eval-rst}\n' + api_directives[full] + '\n```\n'))
                continue
            s = _re_directive.sub('', s).strip('\n')
            if not s: continue
            c['source'] = s
        elif c['cell_type'] == 'markdown':
            if 'WARNING: THIS FILE WAS AUTOGENERATED' in s: continue
            c['source'] = link(s, pages, api)
        out.append(c)
    nb['cells'] = [clean(c, i) for i, c in enumerate(out)]
    nb['metadata'].pop('execution', None)

    return nb

def source_map(cells) -> list[int]:
    "First line of each cell, as if the cells were one file."
    # Without this map MyST-NB numbers cell n from n*10000, and parses each `eval-rst` block (an API entry) after
    # that many blank lines: a minute per build instead of a few seconds.
    starts, line = [], 0
    for c in cells: starts.append(line); line += len(text(c).splitlines()) + 1
    return starts

api_directives: dict[str, str] = {}   # full name -> autodoc directive

_re_fence = re.compile(r'(^```.*?^```[ \t]*$)', re.M | re.S)
_re_code = re.compile(r'(?<![`\w])`([A-Za-z_][\w.]*)`(?!`)')
_re_link = re.compile(r'\]\((?!https?:|mailto:|#)([^)#\s]+?)(\.ipynb|\.html)(#[^)\s]*)?\)')

def link(s:str, pages:dict[str, str], api:dict[str, str]) -> str:
    "Links between notebooks point at their pages; `Name` with an API entry links to it (outside code blocks)."
    def page_link(m):
        stem = Path(m.group(1)).name
        target = pages.get(stem) or (stem if stem in pages.values() else None)
        if target is None: return m.group(0)    # left for Sphinx to report
        return f']({target}.ipynb{m.group(3) or ""})'
    def code(m):
        full = api.get(m.group(1))
        return f'{{py:obj}}`{m.group(1)} <{full}>`' if full else m.group(0)
    parts = _re_fence.split(s)
    for i in range(0, len(parts), 2):
        parts[i] = _re_code.sub(code, _re_link.sub(page_link, parts[i]))
    return ''.join(parts)

# The site's navigation: groups of pages, by notebook, in reading order.
NAV = {'Get started': ['index', '08_demo', '10_guide_routes'],
       'Guides': ['11_guide_retries', '12_guide_durability', '13_guide_testing', '14_guide_scaling', '15_guide_security',
                  '19_guide_operating'],
       'Reference': ['04_utils_bgtsk', '05_scheduler', '05a_schedules', '06_ui', '09_worker', '16_ops', '17_ops_ui',
                     '18_metrics', '07_pg', '00_db_host', '01_jobs', '02_store', '03_runner'],
       'Benchmarks': ['20_benchmarks']}

def toctree(pages:dict[str, str]) -> str:
    "Hidden toctrees on the index page: Furo's sidebar and the previous/next links follow them."
    missing = set(pages) - {n for g in NAV.values() for n in g}
    if missing: raise SystemExit(f'notebooks missing from NAV in {__file__}: {sorted(missing)}')
    out = []
    for cap, nbs in NAV.items():
        entries = '\n'.join('self' if n == 'index' else pages[n] for n in nbs)
        out.append(f'```{{toctree}}\n:hidden:\n:caption: {cap}\n\n{entries}\n```\n')
    return '\n'.join(out)

# ---------------------------------------------------------------- main
def main() -> int:
    t0 = time.time()
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)                                   # nbdev reads pyproject.toml from here
    nbs = notebooks()
    shutil.rmtree(BUILD, ignore_errors=True)
    workers = int(os.environ.get('DOCS_WORKERS', min(4, os.cpu_count() or 2)))
    if not execute_all(nbs, workers): log('a notebook failed: no site built'); return 1
    t1 = time.time()

    pages = {nb.stem: page_name(nb) for nb in nbs}
    processed = {nb: process(nb) for nb in nbs}
    # every API entry of the site, so that prose can link to it and each is rendered once
    documented: dict[str, str] = {}
    found = []                                      # (full name, object, parent) of every entry, in page order
    for nb, n in processed.items():
        mod = module_of(json.load(open(nb))['cells'])
        targets = {}
        for c in n['cells']:
            if c['cell_type'] == 'code' and c.get('source') and (d := showdoc_target(text(c))):
                if mod is None: raise SystemExit(f'{nb.name}: show_doc({d}) in a notebook without default_exp')
                found.append(resolve(f'fh_saas.{mod}', d))
                targets[d] = documented[d] = found[-1][0]
        n['metadata']['fh_targets'] = targets
    full_names = set(documented.values())
    for full, obj, parent in found: api_directives[full] = directive(full, obj, parent, full_names)
    api = {**{d.rsplit('.', 1)[-1]: f for d, f in documented.items() if '.' not in d}, **documented}

    SRC.mkdir(parents=True, exist_ok=True)
    for nb, n in processed.items():
        n = adapt(n, pages, api)
        n['metadata'].pop('fh_targets', None)
        n = {k: v for k, v in n.items() if k in ('cells', 'metadata', 'nbformat', 'nbformat_minor')}
        if nb.stem == 'index': n['cells'].append(clean(md(toctree(pages)), len(n['cells'])))
        n['metadata']['source_map'] = source_map(n['cells'])
        (SRC/f'{pages[nb.stem]}.ipynb').write_text(json.dumps(n, indent=1))
    if (NBS/'images').exists(): shutil.copytree(NBS/'images', SRC/'images')
    static = BUILD/'static'
    static.mkdir(exist_ok=True)
    vendor_mermaid(static)
    t2 = time.time()

    html = BUILD/'html'
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-W', '--keep-going', '-q', '-j', 'auto', '-c', str(HERE),
           '-d', str(BUILD/'doctrees'), str(SRC), str(html)]
    r = subprocess.run(cmd, cwd=BUILD, env={**os.environ, 'FH_SAAS_DOCS_STATIC': str(static)})
    if r.returncode: log(f'sphinx-build failed (exit {r.returncode})'); return r.returncode
    (html/'.nojekyll').touch()
    shutil.rmtree(DOCS, ignore_errors=True)
    shutil.copytree(html, DOCS)
    log(f'{len(nbs)} pages in {time.time() - t0:.0f} s (execute {t1 - t0:.0f} s, adapt {t2 - t1:.0f} s, '
        f'sphinx {time.time() - t2:.0f} s): {DOCS.relative_to(ROOT)}/index.html')
    return 0

def vendor_mermaid(static:Path):
    "Mermaid's ES module build, from npm (cached by `.ci/npm_assets.py`): diagrams are drawn without a CDN."
    sys.path.insert(0, str(HERE.parent))
    from npm_assets import npm_tree
    npm_tree(*MERMAID, 'dist/mermaid.esm.min.mjs', static/'mermaid')
    npm_tree(*MERMAID, 'dist/chunks/mermaid.esm.min/', static/'mermaid')
    npm_tree(*MERMAID, 'LICENSE', static/'mermaid')

if __name__ == '__main__':
    import fcntl
    with open(ROOT/'.docs-build.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # one build at a time: a second one waits, then builds afresh
        sys.exit(main())
