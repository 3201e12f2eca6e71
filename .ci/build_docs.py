#!/usr/bin/env python3
"""Build the documentation site offline into `_docs/` (no Quarto needed).

1. `nbdev-proc-nbs` (from the running venv) writes processed notebooks to `_proc/`: directives applied,
   `#| hide` and exported cells removed, `show_doc` cells executed into markdown, frontmatter added.
2. Each processed notebook is cleaned (directive lines stripped, markdown outputs turned into markdown
   cells, hidden sources dropped) and rendered by pandoc (`-f ipynb -t html5`) into `_docs/<page>.html`,
   `<page>` being nbdev's own `output-file` (`00_db_host.ipynb` -> `db_host.html`), so the URLs are the
   ones Quarto would publish.
3. Every page gets the same navigation (index first, then notebook file order), `style.css`, links
   between notebooks rewritten to the rendered pages, and Mermaid diagrams rendered in the browser by a
   vendored `mermaid.min.js` (fetched once with `npm pack` into `.ci/.cache/npm/` by `.ci/npm_assets.py`; no
   CDN). Without npm the diagrams are shown as their source with a caption. Images under `nbs/` (e.g.
   `nbs/images/x.png`, referenced from markdown as `images/x.png`) are copied to the same place in `_docs/`.

Usage (from anywhere): `.venv/bin/python .ci/build_docs.py`. Exits non-zero if any notebook fails.
"""
from __future__ import annotations
import html, json, os, re, shutil, subprocess, sys, tempfile, time, tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from npm_assets import npm_file, NpmError

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT/'.ci'/'.cache'
BIN = Path(sys.executable).parent          # the venv's bin dir (sys.executable is not resolved on purpose)
MERMAID_VERSION = os.environ.get('DOCS_MERMAID_VERSION', '11.17.2')
SKIP_PREFIXES = ('_', '.', 'test_')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp')

def log(*a): print('[docs]', *a, flush=True)

# ---------------------------------------------------------------- config
def load_config():
    pp = tomllib.loads((ROOT/'pyproject.toml').read_text())
    nb = pp.get('tool', {}).get('nbdev', {})
    proj = pp.get('project', {})
    return dict(name=proj.get('name', ROOT.name), description=proj.get('description', ''),
                nbs=ROOT/nb.get('nbs_path', 'nbs'), docs=ROOT/nb.get('doc_path', '_docs'),
                doc_url=proj.get('urls', {}).get('Documentation', '').rstrip('/'))

def nbpath2html(name:str) -> str:
    "Same rule as `nbdev.config.nbpath2html`: lower-case, numeric prefix stripped."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower()).rsplit('.', 1)[0] + '.html'

def source_notebooks(nbs:Path) -> list[Path]:
    "Notebooks to publish: top level of `nbs/`, index first, then file order."
    nbs_ = [p for p in sorted(nbs.glob('*.ipynb')) if not p.name.startswith(SKIP_PREFIXES)]
    return sorted(nbs_, key=lambda p: (p.stem != 'index', p.name))

# ---------------------------------------------------------------- step 1: nbdev-proc-nbs
def proc_nbs():
    env = dict(os.environ)
    env['PATH'] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if not shutil.which('quarto', path=env['PATH']):
        # nbdev-proc-nbs never runs quarto, but it tries to *install* it (sudo + curl) when it is missing.
        # A stub on PATH skips that detour; real quarto installs still win.
        stub = CACHE/'bin'/'quarto'
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text('#!/bin/sh\necho "quarto stub from .ci/build_docs.py: Quarto is not installed" >&2\nexit 1\n')
        stub.chmod(0o755)
        env['PATH'] = f"{stub.parent}{os.pathsep}{env['PATH']}"
    exe = BIN/'nbdev-proc-nbs'
    cmd = [str(exe)] if exe.exists() else [sys.executable, '-c', 'from nbdev.quarto import nbdev_proc_nbs; nbdev_proc_nbs()']
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode == 0: return None
    out = (r.stdout + r.stderr).rstrip()
    print('\n'.join(out.splitlines()[-30:]), file=sys.stderr)
    # nbdev's message: "Exception: Error in notebook: <title> in cell <n> :\n<source>\n<ExcType>: <msg>"
    blocks = re.findall(r'^Exception: (Error in notebook.*?)(?:\n"""|\Z)', out, re.S | re.M)
    msg = blocks[-1].strip() if blocks else f'exit {r.returncode}'
    hint = ''
    if 'is not defined' in msg:
        hint = ('\n  hint: to build docs nbdev executes only exported cells, show_doc cells and cells that import; '
                'a cell mixing imports with code that needs earlier (non-exported) cells fails. '
                'Put the imports in a cell of their own.')
    log(f'nbdev-proc-nbs failed: {msg}{hint}')
    return msg

# ---------------------------------------------------------------- step 2: clean a processed notebook
_re_dir = re.compile(r'^\s*#\|\s*([\w-]+)\s*(?::\s*(.*?)|\s+(.*?))?\s*$')

def src(c) -> str: s = c.get('source', ''); return ''.join(s) if isinstance(s, list) else s

def split_directives(s:str):
    "Leading `#| key: value` / `#| key value` lines as a dict, and the rest of the source."
    lines, d = s.splitlines(), {}
    i = 0
    while i < len(lines):
        m = _re_dir.match(lines[i])
        if not m:
            if lines[i].strip(): break
            i += 1; continue
        v = (m.group(2) if m.group(2) is not None else m.group(3)) or ''
        d[m.group(1).lower()] = v.strip().strip('"\'')
        i += 1
    return d, '\n'.join(lines[i:]).strip('\n')

def parse_frontmatter(s:str) -> dict:
    s = s.strip()
    if not s.startswith('---'): return {}
    body = s.strip('-').strip()
    try:
        import yaml
        fm = yaml.safe_load(body) or {}
        return fm if isinstance(fm, dict) else {}
    except Exception:
        fm = {}
        for l in body.splitlines():
            if ':' in l and not l.startswith(' '):
                k, v = l.split(':', 1); fm[k.strip()] = v.strip().strip('\'"')
        return fm

def md_cell(text:str) -> dict: return dict(cell_type='markdown', metadata={}, source=text)

def clean_notebook(nb:dict) -> tuple[dict, dict, list[str]]:
    "Return (notebook for pandoc, frontmatter, warnings)."
    fm, cells, warns = {}, [], []
    for c in nb.get('cells', []):
        ct, s = c.get('cell_type'), src(c)
        if ct == 'raw':
            if not fm and s.strip().startswith('---'): fm = parse_frontmatter(s); continue
            fmt = (c.get('metadata', {}).get('raw_mimetype') or c.get('metadata', {}).get('format') or '')
            if 'html' in fmt: cells.append(md_cell(s))  # raw html passes through the markdown reader
            continue
        if ct == 'markdown':
            if not s.strip() or re.fullmatch(r'\s*<!--.*?-->\s*', s, re.S): continue   # nbdev's 'do not edit' comment
            if 'title' not in fm:   # notebook without nbdev frontmatter: first H1 is the title
                m = re.match(r'\s*#\s+(.+?)\s*(?:\n|$)', s)
                if m:
                    fm['title'] = m.group(1); s = s[m.end():]
                    m2 = re.match(r'\s*>\s*(.+?)\s*(?:\n\n|$)', s, re.S)
                    if m2 and 'description' not in fm: fm['description'] = m2.group(1); s = s[m2.end():]
                    if not s.strip(): continue
            cells.append(dict(cell_type='markdown', metadata={}, source=s, **({'attachments': c['attachments']} if c.get('attachments') else {})))
            continue
        if ct != 'code': continue
        if 'source' not in c: continue                          # removed by nbdev (hide, export, ...)
        d, code = split_directives(s)
        if {'hide', 'export', 'exporti', 'default_exp'} & d.keys() or d.get('include') == 'false':
            warns.append(f'cell with directives {sorted(d)} was still in _proc/: dropped')
            continue
        outs = [] if d.get('output') == 'false' else list(c.get('outputs', []))
        keep, mds = [], []
        for o in outs:
            data = o.get('data', {})
            if 'text/markdown' in data and 'text/html' not in data:
                md = data['text/markdown']; mds.append(''.join(md) if isinstance(md, list) else md)
            elif d.get('output') == 'asis' and 'text/plain' in data and len(data) == 1:
                t = data['text/plain']; mds.append(''.join(t) if isinstance(t, list) else t)
            else: keep.append(o)
        echo = d.get('echo', 'true') != 'false' and code.strip()
        if echo or keep:
            meta = {}
            if not echo: meta['fh-src'] = 'hidden'
            elif 'code-fold' in d: meta['fh-fold'] = ('open:' if d['code-fold'] == 'show' else '') + (d.get('code-summary') or 'Code')
            cells.append(dict(cell_type='code', metadata=meta, execution_count=None,
                              source=code if echo else '', outputs=keep))
        cells.extend(md_cell(m) for m in mds if m.strip())
    meta = {k: v for k, v in nb.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    return dict(nbformat=4, nbformat_minor=5, metadata=meta, cells=cells), fm, warns

# ---------------------------------------------------------------- step 3: pandoc + page shell
BODY_TPL = '$if(toc)$<!--TOC-->$table-of-contents$<!--/TOC-->$endif$\n$body$\n'

def inline_md(s:str) -> str:
    "Tiny inline markdown for titles/descriptions: escaping, `code`, **bold**, *em*, [links](x)."
    out = []
    for i, part in enumerate(re.split(r'(`[^`]*`)', str(s))):
        if i % 2: out.append(f'<code>{html.escape(part[1:-1])}</code>'); continue
        p = html.escape(part, quote=False)
        p = re.sub(r'\*\*(.+?)\*\*', r'<strong>\1</strong>', p)
        p = re.sub(r'(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])', r'<em>\1</em>', p)
        p = re.sub(r'\[([^\]]+)\]\(([^)\s]+)\)', lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', p)
        out.append(p)
    return ''.join(out)

def plain(s:str) -> str: return re.sub(r'[`*]', '', str(s)).strip()

def pandoc(inp:Path, cwd:Path, media:str, fmt='ipynb-gfm_auto_identifiers') -> tuple[str, str]:
    tpl = inp.parent/'body.tpl'
    if not tpl.exists(): tpl.write_text(BODY_TPL)
    cmd = ['pandoc', '-f', fmt, '-t', 'html5', '-s', '--template', str(tpl), '--toc', '--toc-depth=2',
           '--wrap=none', '--highlight-style=pygments', f'--extract-media={media}', '-M', 'pagetitle=x', str(inp)]
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if r.returncode: raise RuntimeError(f'pandoc exit {r.returncode}: {r.stderr.strip()}')
    out, toc = r.stdout, ''
    m = re.search(r'<!--TOC-->(.*?)<!--/TOC-->', out, re.S)
    if m: toc, out = m.group(1), out[:m.start()] + out[m.end():]
    return out, toc

def highlight_css(tmp:Path) -> str:
    t = tmp/'hl.tpl'; t.write_text('$highlighting-css$\n')
    r = subprocess.run(['pandoc', '-f', 'markdown', '-t', 'html5', '-s', '--template', str(t), '-M', 'pagetitle=x',
                        '--highlight-style=pygments'], input='```python\nx = 1\n```\n', capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ''

_re_codecell = re.compile(r'(<div\b[^>]*\bclass="cell code"[^>]*>)\s*(<div class="sourceCode"[^>]*>.*?</pre></div>)', re.S)
_re_mermaid = re.compile(r'<pre class="(?:\{mermaid\}|mermaid)"><code>(.*?)</code></pre>', re.S)

def postprocess(body:str, link, have_mermaid:bool) -> tuple[str, int]:
    def codecell(m):
        tag, block = m.groups()
        if 'data-fh-src=' in tag: block = ''
        elif (f := re.search(r'data-fh-fold="([^"]*)"', tag)):
            summary = html.unescape(f.group(1)).strip('"')
            is_open = summary.startswith('open:')
            if is_open: summary = summary[5:]
            block = (f'<details class="code-fold"{" open" if is_open else ""}><summary>{html.escape(summary)}</summary>'
                     f'{block}</details>')
        tag = re.sub(r'\s+data-fh-(?:src|fold)="[^"]*"', '', tag)
        return tag + block
    body = _re_codecell.sub(codecell, body)
    body = re.sub(r'<colgroup>.*?</colgroup>\s*', '', body, flags=re.S)   # let the browser size table columns
    n = 0
    def mermaid(m):
        nonlocal n; n += 1
        if have_mermaid:
            return (f'<figure class="diagram"><pre class="mermaid">{m.group(1)}</pre>'
                    f'<figcaption>Diagram {n}</figcaption></figure>')
        return (f'<figure class="diagram diagram-source"><pre class="mermaid-source"><code>{m.group(1)}</code></pre>'
                f'<figcaption>Diagram {n} (Mermaid source: the renderer was not available when these docs were built)</figcaption></figure>')
    body = _re_mermaid.sub(mermaid, body)
    body = re.sub(r'\bhref="([^"]*)"', lambda m: f'href="{html.escape(link(html.unescape(m.group(1))))}"', body)
    return body, n

CSS = r"""
:root { --fg:#1f2328; --muted:#59636e; --bg:#ffffff; --side:#f6f8fa; --line:#d1d9e0; --accent:#0b63c5;
        --code-bg:#f6f8fa; --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
        --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; color: var(--fg); background: var(--bg); font-family: var(--sans); line-height: 1.6; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.topbar { position: sticky; top: 0; z-index: 10; display: flex; gap: 1rem; align-items: baseline;
          padding: .7rem 1.5rem; background: #0d1b2a; color: #e6edf3; }
.topbar .brand { color: #fff; font-weight: 700; font-size: 1.15rem; }
.topbar .tagline { color: #9fb3c8; font-size: .9rem; }
.layout { display: grid; grid-template-columns: 16rem minmax(0, 1fr) 14rem; min-height: calc(100vh - 3rem); }
.sidebar { background: var(--side); border-right: 1px solid var(--line); padding: 1.2rem 1rem; }
.sidebar .sticky { position: sticky; top: 4rem; }
.sidebar h2, .toc h2 { font-size: .75rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 .6rem; }
.sidebar ul, .toc ul { list-style: none; margin: 0; padding: 0; }
.sidebar li a { display: block; padding: .35rem .6rem; border-radius: 6px; color: var(--fg); font-size: .93rem; }
.sidebar li a:hover { background: #e7ecf0; text-decoration: none; }
.sidebar li a[aria-current="page"] { background: var(--accent); color: #fff; font-weight: 600; }
.sidebar .sub { display: block; font-size: .78rem; color: var(--muted); }
.sidebar li a[aria-current="page"] .sub { color: #dbe9fb; }
main { padding: 1.5rem 2.5rem 4rem; max-width: 62rem; }
.toc { padding: 1.5rem 1rem; font-size: .85rem; border-left: 1px solid var(--line); }
.toc > div { position: sticky; top: 4rem; }
.toc li { margin: .25rem 0; } .toc ul ul { padding-left: .8rem; }
.page-header { border-bottom: 1px solid var(--line); margin-bottom: 1.5rem; padding-bottom: .8rem; }
h1.title { font-size: 2rem; margin: .2rem 0 .4rem; line-height: 1.25; }
.description { color: var(--muted); font-size: 1.1rem; margin: 0; }
h2 { font-size: 1.45rem; margin-top: 2.2rem; padding-bottom: .25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.15rem; margin-top: 1.6rem; }
hr { border: 0; border-top: 1px solid var(--line); margin: 2rem 0 1rem; }
code { font-family: var(--mono); font-size: .88em; background: var(--code-bg); padding: .1em .35em; border-radius: 4px; }
pre { font-family: var(--mono); font-size: .86rem; line-height: 1.45; background: var(--code-bg); border: 1px solid var(--line);
      border-radius: 6px; padding: .8rem 1rem; overflow-x: auto; }
pre code { background: none; padding: 0; font-size: inherit; }
div.sourceCode { margin: 1rem 0; } div.sourceCode pre { margin: 0; }
pre > code.sourceCode > span > a:first-child::before { text-decoration: none; }
.cell.code { margin: 1rem 0; }
.output pre { background: #fff; border-style: dashed; }
.output.error pre, .output.stream.stderr pre { background: #fff5f5; border-color: #f1aeb5; color: #842029; }
details.code-fold { margin: 1rem 0; } details.code-fold summary { cursor: pointer; color: var(--muted); font-size: .9rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .93rem; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: .4rem .7rem; text-align: left; vertical-align: top; }
thead th, tr.header th { background: var(--side); font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
blockquote { margin: 1rem 0; padding: .2rem 1rem; border-left: 4px solid var(--line); color: var(--muted); }
figure.diagram { margin: 1.5rem 0; text-align: center; }
figure.diagram pre.mermaid { background: #fff; border: 1px solid var(--line); }
figure.diagram pre.mermaid-source { text-align: left; }
figure.diagram figcaption { color: var(--muted); font-size: .85rem; margin-top: .4rem; }
img, svg { max-width: 100%; height: auto; }
.pages { padding-left: 1.2rem; } .pages li { margin: .4rem 0; }
footer { border-top: 1px solid var(--line); color: var(--muted); font-size: .8rem; padding: .8rem 1.5rem; }
@media (max-width: 1100px) { .layout { grid-template-columns: 14rem minmax(0, 1fr); } .toc { display: none; } }
@media (max-width: 700px) { .layout { display: block; } .sidebar { border-right: 0; border-bottom: 1px solid var(--line); }
                            main { padding: 1rem; } }
"""

MERMAID_JS = """<script src="mermaid.min.js"></script>
<script>
mermaid.initialize({startOnLoad: false, theme: 'neutral', securityLevel: 'strict'});
mermaid.run({querySelector: 'pre.mermaid'}).catch(e => console.error('mermaid: ' + e));
</script>"""

def page_html(cfg, pages, cur, title, desc, body, toc, src_name, scripts=''):
    items = []
    for p in pages:
        cur_attr = ' aria-current="page"' if p['file'] == cur else ''
        items.append(f'<li><a href="{p["file"]}"{cur_attr}>{inline_md(p["title"])}</a></li>')
    toc_html = f'<aside class="toc"><div><h2>On this page</h2>{toc}</div></aside>' if toc.strip() else '<aside class="toc"></aside>'
    home = 'index.html'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nbdev-proc-nbs + pandoc (.ci/build_docs.py)">
<title>{html.escape(plain(title))}</title>
<meta name="description" content="{html.escape(plain(desc))}">
<link rel="stylesheet" href="style.css">
</head>
<body>
<header class="topbar"><a class="brand" href="{home}">{html.escape(cfg['name'])}</a><span class="tagline">{html.escape(cfg['description'])}</span></header>
<div class="layout">
<nav class="sidebar" aria-label="Pages"><div class="sticky"><h2>Pages</h2><ul>
{chr(10).join(items)}
</ul></div></nav>
<main id="content">
<header class="page-header"><h1 class="title">{inline_md(title)}</h1>{f'<p class="description">{inline_md(desc)}</p>' if desc else ''}</header>
{body}
</main>
{toc_html}
</div>
<footer>Rendered from <code>{html.escape(src_name)}</code> by nbdev-proc-nbs and pandoc.</footer>
{scripts}
</body>
</html>
"""

# ---------------------------------------------------------------- mermaid vendoring
def vendor_mermaid(docs:Path) -> bool:
    "Copy mermaid.min.js (fetched once by `npm pack`, see .ci/npm_assets.py) into the site; False if it cannot."
    if os.environ.get('DOCS_NO_MERMAID'): return False
    try:
        js = npm_file('mermaid', MERMAID_VERSION, 'dist/mermaid.min.js')
        lic = npm_file('mermaid', MERMAID_VERSION, 'LICENSE')
    except (NpmError, OSError) as e:
        log(f'could not get mermaid@{MERMAID_VERSION} ({e}): diagrams will be shown as source')
        return False
    shutil.copy2(js, docs/'mermaid.min.js')
    shutil.copy2(lic, docs/'mermaid.LICENSE.txt')
    return True

# ---------------------------------------------------------------- main
def main() -> int:
    t0 = time.time()
    if not shutil.which('pandoc'): log('pandoc is not installed (apt-get install pandoc)'); return 1
    cfg = load_config()
    nbs_dir, docs, proc = cfg['nbs'], cfg['docs'], ROOT/'_proc'
    log('running nbdev-proc-nbs ...')
    proc_error = proc_nbs()
    t1 = time.time()

    srcs = source_notebooks(nbs_dir)
    if not srcs: log(f'no notebooks in {nbs_dir}'); return 1
    if docs.exists(): shutil.rmtree(docs)
    docs.mkdir(parents=True)
    have_mermaid = vendor_mermaid(docs)

    # Load and clean every processed notebook first: the navigation needs all titles.
    pages, failures = [], []
    if proc_error: failures.append(('nbdev-proc-nbs', RuntimeError(proc_error.splitlines()[0])))
    for s in srcs:
        p = proc/s.name
        try:
            if not p.exists(): raise FileNotFoundError(f'{p.relative_to(ROOT)} missing: nbdev-proc-nbs did not process it')
            if proc_error and p.stat().st_mtime < s.stat().st_mtime:
                raise RuntimeError(f'{p.relative_to(ROOT)} is older than {s.name} and nbdev-proc-nbs failed: not rendered')
            nb, fm, warns = clean_notebook(json.loads(p.read_text()))
            for w in warns: log(f'{s.name}: {w}')
            out = 'index.html' if s.stem == 'index' else (str(fm.get('output-file') or nbpath2html(s.name)))
            pages.append(dict(src=s, nb=nb, file=out, title=str(fm.get('title') or s.stem),
                              desc=str(fm.get('description') or '')))
        except Exception as e: failures.append((s.name, e))

    if not any(p['file'] == 'index.html' for p in pages):
        pages.insert(0, dict(src=None, nb=None, file='index.html', title=cfg['name'], desc=cfg['description']))

    # Aliases so `nbs/01_x.ipynb`, `01_x.ipynb`, `01_x.html`, `x.html` and hosted-docs URLs all land on the page.
    alias = {}
    for p in pages:
        alias[p['file'].rsplit('.', 1)[0].lower()] = p['file']
        if p['src'] is not None:
            alias[p['src'].stem.lower()] = p['file']
            alias[nbpath2html(p['src'].name)[:-5]] = p['file']
    unresolved = []
    def link(h:str) -> str:
        if cfg['doc_url'] and h.startswith(cfg['doc_url'] + '/'): h = h[len(cfg['doc_url']) + 1:]
        if not h or h.startswith(('#', '/', '//')) or re.match(r'^[a-zA-Z][\w+.-]*:', h): return h
        path, sep, anchor = h.partition('#')
        base = path.rstrip('/').rsplit('/', 1)[-1]
        stem, dot, ext = base.rpartition('.')
        if not dot or ext.lower() not in ('ipynb', 'html', 'qmd', 'md'): return h
        if ext.lower() == 'md' and stem.lower().endswith('.html'): stem = stem[:-5]   # nbdev's `x.html.md`
        target = alias.get(stem.lower())
        if target is None: unresolved.append(h); return h
        return target + (sep + anchor if anchor else '')

    (docs/'style.css').write_text(CSS.strip() + '\n\n/* pandoc syntax highlighting (pygments) */\n'
                                  + highlight_css(Path(tempfile.mkdtemp(prefix='docs-hl-'))))
    for base in (nbs_dir, proc):   # images referenced by the notebooks (nbdev-proc-nbs does not copy them all)
        if not base.exists(): continue
        for f in base.rglob('*'):
            rel = f.relative_to(base)
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not any(x.startswith(('.', '_')) for x in rel.parts):
                (docs/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, docs/rel)

    n_diagrams = 0
    with tempfile.TemporaryDirectory(prefix='docs-build-') as tmp:
        tmp = Path(tmp)
        for p in pages:
            try:
                if p['src'] is None:      # no index notebook: a contents page
                    lis = ''.join(f'<li><a href="{q["file"]}">{inline_md(q["title"])}</a>'
                                  + (f' — {inline_md(q["desc"])}' if q['desc'] else '') + '</li>' for q in pages if q is not p)
                    body, toc, diagrams, src_name = f'<h2 id="contents">Contents</h2><ul class="pages">{lis}</ul>', '', 0, 'pyproject.toml'
                else:
                    ipynb = tmp/(p['src'].stem + '.ipynb')
                    ipynb.write_text(json.dumps(p['nb']))
                    body, toc = pandoc(ipynb, cwd=docs, media=f"media/{p['file'][:-5]}")
                    body, diagrams = postprocess(body, link, have_mermaid)
                    toc = re.sub(r'\bhref="([^"]*)"', lambda m: f'href="{html.escape(link(html.unescape(m.group(1))))}"', toc)
                    src_name = str(p['src'].relative_to(ROOT))
                n_diagrams += diagrams
                scripts = MERMAID_JS if (diagrams and have_mermaid) else ''
                (docs/p['file']).write_text(page_html(cfg, pages, p['file'], p['title'], p['desc'], body, toc, src_name, scripts))
            except Exception as e: failures.append((p['src'].name if p['src'] else p['file'], e))

    for h in sorted(set(unresolved)): log(f'warning: link to an unknown page left as is: {h}')
    log(f"{len(pages)} pages, {n_diagrams} diagram(s) ({'mermaid ' + MERMAID_VERSION if have_mermaid else 'shown as source'}) "
        f"-> {docs.relative_to(ROOT)}/ in {time.time()-t0:.1f} s (nbdev-proc-nbs {t1-t0:.1f} s)")
    if failures:
        for name, e in failures: log(f'FAILED {name}: {type(e).__name__}: {e}')
        return 1
    return 0

if __name__ == '__main__': sys.exit(main())
