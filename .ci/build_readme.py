"""Write README.md from nbs/index.ipynb (markdown cells as they are, code cells as Python blocks).

    .venv/bin/python .ci/build_readme.py           # write README.md
    .venv/bin/python .ci/build_readme.py --check   # exit 1 if README.md differs from what the notebook gives
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def readme() -> str:
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    parts = ['<!-- Generated from nbs/index.ipynb by .ci/build_readme.py: edit the notebook, not this file. -->']
    for c in nb['cells']:
        src = ''.join(c['source']).strip()
        if not src: continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            if any(l.strip() in ('#| hide', '#|hide') for l in src.splitlines()) or not lines: continue
            parts.append('```python\n' + '\n'.join(lines) + '\n```')
    text = '\n\n'.join(parts) + '\n'
    # links between notebooks and to their images point into nbs/ from the repository root
    return re.sub(r'\]\((\d\d[a-z]?_[\w-]+\.ipynb|images/)', r'](nbs/\1', text)

if __name__ == '__main__':
    want, path = readme(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not path.exists() or path.read_text() != want:
            sys.exit("README.md is not what nbs/index.ipynb gives: run .venv/bin/python .ci/build_readme.py")
        print("README.md matches nbs/index.ipynb")
    else:
        path.write_text(want); print(f"wrote {path}")
