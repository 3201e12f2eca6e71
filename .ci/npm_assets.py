"""Files from npm packages, fetched once with `npm pack` into `.ci/.cache/npm/`, so nothing needs a CDN.

    npm_file('mermaid', '11.17.2', 'dist/mermaid.min.js')   # -> Path of the file in the cache
    cdn_file('https://cdn.jsdelivr.net/npm/htmx.org@2.0.7/dist/htmx.js')   # the same, for a jsDelivr npm URL

Used by `.ci/build_docs.py` (Mermaid for the docs) and `tests/test_ui_browser.py` (HTMX and Pico for the
FastHTML pages, whose default headers load them from cdn.jsdelivr.net). The package tarball is kept next to the
files taken from it, so later files of the same package need no network.
"""
from __future__ import annotations
import re, shutil, subprocess, tarfile, tempfile, threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT/'.ci'/'.cache'/'npm'
# jsDelivr URLs that name a moving version (FastHTML's Pico link says `@latest`): pinned, so the cache and the
# tests stay the same until someone moves the pin.
PINS = {('@anyblades/pico', 'latest'): '2.5.0'}

_lock = threading.Lock()
_re_pkg = re.compile(r'(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*')
_re_exact = re.compile(r'\d+\.\d+\.\d+(?:[-+][\w.-]+)?')
_re_jsdelivr = re.compile(r'https://cdn\.jsdelivr\.net/npm/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)')

class NpmError(RuntimeError):
    "A file could not be had from npm."

def _tarball(pkg:str, version:str, d:Path, timeout:float) -> Path:
    "The package tarball in `d`, packed by npm if it is not there yet."
    tgz = next(iter(sorted(d.glob('*.tgz'))), None)
    if tgz is not None: return tgz
    npm = shutil.which('npm')
    if not npm: raise NpmError('npm is not installed (apt-get install npm)')
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d) as tmp:   # a tarball appears in `d` only once complete
        try: r = subprocess.run([npm, 'pack', f'{pkg}@{version}', '--pack-destination', tmp, '--silent'], cwd=tmp,
                                capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired: raise NpmError(f'npm pack {pkg}@{version} took over {timeout} s') from None
        got = next(iter(sorted(Path(tmp).glob('*.tgz'))), None)
        if r.returncode or got is None:
            raise NpmError(f'npm pack {pkg}@{version} failed: {(r.stderr or r.stdout).strip()[-500:] or "no tarball"}')
        return got.replace(d/got.name)

def npm_file(pkg:str, version:str, path:str, cache:Path=CACHE, timeout:float=180) -> Path:
    "`path` inside npm package `pkg` at the exact `version`, from the cache or fetched once; `NpmError` if it cannot."
    if not _re_pkg.fullmatch(pkg) or not _re_exact.fullmatch(version): raise ValueError(f'bad package {pkg}@{version}')
    rel = Path(path)
    if rel.is_absolute() or '..' in rel.parts or not rel.parts: raise ValueError(f'bad path {path!r}')
    d = cache/pkg.replace('/', '+')/version
    out = d/'files'/rel
    if out.is_file(): return out
    with _lock:
        if out.is_file(): return out
        with tarfile.open(_tarball(pkg, version, d, timeout)) as tf:
            try: f = tf.extractfile(f'package/{rel.as_posix()}')
            except KeyError: f = None
            if f is None: raise NpmError(f'{pkg}@{version} has no file {path}')
            out.parent.mkdir(parents=True, exist_ok=True)
            part = out.with_name(out.name + '.part')
            part.write_bytes(f.read()); part.replace(out)
    return out

# jsDelivr GitHub URLs whose file npm also publishes: (GitHub owner/repo, path) -> (npm package, version, path)
GH_ON_NPM = {('gnat/css-scope-inline', 'script.js'): ('css-scope-inline', '1.0.0', 'script.js')}
_re_gh = re.compile(r'https://cdn\.jsdelivr\.net/gh/([^/@]+/[^/@]+)@[^/]+/(.+)')

def cdn_file(url:str, **kw) -> Path|None:
    "The cached file for a jsDelivr npm URL (or a GitHub one whose file npm publishes too); `None` for any other URL."
    g = _re_gh.fullmatch(url.split('?', 1)[0].split('#', 1)[0])
    if g and g.groups() in GH_ON_NPM: return npm_file(*GH_ON_NPM[g.groups()], **kw)
    m = _re_jsdelivr.fullmatch(url.split('?', 1)[0].split('#', 1)[0])
    if not m: return None
    pkg, version, path = m.groups()
    version = PINS.get((pkg, version), version)
    if not _re_exact.fullmatch(version): raise NpmError(f'{url}: add a pin for ({pkg!r}, {version!r}) to PINS in {__file__}')
    return npm_file(pkg, version, path, **kw)

def npm_tree(pkg:str, version:str, prefix:str, dest:Path, cache:Path=CACHE, timeout:float=180) -> list[Path]:
    "Copy the files of npm package `pkg@version` whose path starts with `prefix` into `dest`, less their first folder."
    if not _re_pkg.fullmatch(pkg) or not _re_exact.fullmatch(version): raise ValueError(f'bad package {pkg}@{version}')
    d = cache/pkg.replace('/', '+')/version
    out = []
    with _lock, tarfile.open(_tarball(pkg, version, d, timeout)) as tf:
        for m in tf.getmembers():
            rel = m.name.split('/', 1)[-1]                      # tarballs hold package/<path>
            if not m.isfile() or not rel.startswith(prefix) or '..' in Path(rel).parts: continue
            parts = Path(rel).parts
            target = dest.joinpath(*(parts[1:] if len(parts) > 1 else parts))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tf.extractfile(m).read())
            out.append(target)
    if not out: raise NpmError(f'{pkg}@{version} has no file under {prefix}')
    return out
