"""Sphinx configuration for the fh-saas site (built by `.ci/site/build.py`; see its docstring)."""
import ast, inspect, os, re, sys, tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
_pp = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']

import fh_saas
project = 'fh-saas'
author = _pp['authors'][0]['name']
copyright = f'2026, {author}'
release = version = fh_saas.__version__

extensions = ['myst_nb', 'sphinx.ext.autodoc', 'sphinx.ext.viewcode', 'sphinx_copybutton', 'sphinxcontrib.mermaid']
root_doc = 'index'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
language = 'en'

# Notebooks arrive executed (build.py runs them first): MyST-NB renders them as they are.
nb_execution_mode = 'off'
nb_merge_streams = True
nb_render_markdown_format = 'myst'   # a cell's Markdown output (the benchmark tables read from bench/results) is parsed as MyST: tables render
myst_enable_extensions = ['attrs_block', 'attrs_inline', 'colon_fence', 'deflist']
myst_fence_as_directive = ['mermaid']
myst_heading_anchors = 3

# API entries: autodoc, with each parameter's comment (fastcore's docments) beside it.
autodoc_preserve_defaults = True            # defaults as written (`clock=time.time`), never the build machine's values
autodoc_typehints = 'description'
autodoc_typehints_format = 'short'
autodoc_typehints_description_target = 'documented_params'   # no `self` entry for `@patch`ed methods
autodoc_member_order = 'bysource'
autodoc_class_signature = 'mixed'
add_module_names = False
python_display_short_literal_types = True
python_maximum_signature_line_length = 60   # longer signatures put one parameter per line: readable on a phone
toc_object_entries_show_parents = 'hide'
viewcode_line_numbers = True
viewcode_follow_imported_members = False   # a logger's entry links to where it is made here, not to `logging`

html_theme = 'furo'
html_title = f'fh-saas {release}'
html_short_title = 'fh-saas'
html_static_path = [p for p in (os.environ.get('FH_SAAS_DOCS_STATIC'), str(HERE/'static')) if p]
html_css_files = ['site.css']
html_favicon = str(HERE/'static'/'favicon.svg')
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
html_theme_options = {'navigation_with_keys': True, 'top_of_page_buttons': []}

copybutton_exclude = '.linenos, .gp, .go'
mermaid_use_local = 'mermaid/mermaid.esm.min.mjs'   # vendored from npm by build.py: no CDN
mermaid_init_config = {'startOnLoad': False, 'securityLevel': 'strict', 'flowchart': {'useMaxWidth': True}}
mermaid_fullscreen = False
mermaid_height = 'auto'                             # drawn at their own size, not squeezed into 500 px

_re_md_code = re.compile(r'(?<!`)`([^`]+)`(?!`)(\w?)')
def _rst(s:str) -> str:
    "Docstrings and comments are written as Markdown: `x` is code (an escaped space if a letter follows, as in `job`s)."
    return _re_md_code.sub(lambda m: f'``{m.group(1)}``' + (f'\\ {m.group(2)}' if m.group(2) else ''), s)

def _params(obj):
    "`(name as shown, comment)` for each documented parameter of `obj` and its return."
    from fastcore.docments import docments
    try: docs = docments(obj, full=True, args_kwargs=True)
    except Exception: return []
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): sig = None
    out = []
    for name, d in docs.items():
        if name in ('self', 'cls') or not d.get('docment'): continue
        if name == 'return': out.append(('return', d['docment'])); continue
        kind = sig.parameters[name].kind if sig and name in sig.parameters else None
        star = {inspect.Parameter.VAR_POSITIONAL: r'\*', inspect.Parameter.VAR_KEYWORD: r'\*\*'}.get(kind, '')
        out.append((star + name, d['docment']))
    return out

def process_docstring(app, what, name, obj, options, lines):
    lines[:] = [_rst(l) for l in lines]
    if what not in ('class', 'exception', 'function', 'method'): return
    ps = _params(obj)
    if not ps: return
    lines.append('')
    for n, doc in ps:
        lines.append(f':returns: {_rst(doc)}' if n == 'return' else f':param {n}: {_rst(doc)}')

def find_source(app, modname):
    "Source pages for `@patch`ed methods too (`BackgroundTaskManager.submit` is defined at module level)."
    from sphinx.pycode import ModuleAnalyzer
    try: a = ModuleAnalyzer.for_module(modname); tags = dict(a.find_tags())
    except Exception: return None
    for node in ast.parse(a.code).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):     # module-level data (`registry`, `MAX_PAYLOAD`) too
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Name) and t.id not in tags: tags[t.id] = ('other', node.lineno, node.end_lineno + 1)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.args.args: continue
        names = [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list]
        ann = node.args.args[0].annotation
        if 'patch' in names and isinstance(ann, ast.Name):
            start = min(d.lineno for d in node.decorator_list)
            tags[f'{ann.id}.{node.name}'] = ('def', start, node.end_lineno + 1)
    return a.code, tags

def setup(app):
    app.connect('autodoc-process-docstring', process_docstring)
    app.connect('viewcode-find-source', find_source)
