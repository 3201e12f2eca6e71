"""What one claim costs as the backlog grows: `claim_due` of 32 jobs with 1,000 to 100,000 due jobs waiting.

A queue that suddenly holds a large backlog is when claims must stay cheap. This fills one tenant's table with
`--sizes` pending jobs (inserted in bulk, so PostgreSQL's statistics still describe the empty table, as they do
until autovacuum next analyzes it), then times `--claims` claims of 32 jobs each, each followed by its finishes;
on PostgreSQL it then runs ANALYZE, as autovacuum would, and times them again.

    .venv/bin/python bench/bench_backlog.py                # SQLite and PostgreSQL (a throwaway server), bench/results
    .venv/bin/python bench/bench_backlog.py --sizes 1000,10000 --out /tmp/x
"""
import argparse, json, os, platform, shlex, sqlite3, statistics, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))
from fh_saas.store import JobStore
from fh_saas.db_host import gen_id, timestamp


def fill(st, n):
    "Insert `n` due pending jobs in one transaction (fast, and no ANALYZE follows)."
    now = time.time(); ts = timestamp(now)
    rows = [dict(id=gen_id(), job_type='noop', status='pending', payload='{}', created_at=ts, max_retries=3,
                 run_at=now - 1, updated_at=ts) for _ in range(n)]
    cols = ', '.join(rows[0]); vals = ', '.join(f':{k}' for k in rows[0])
    with st._tx() as q:
        for r in rows: q(f"INSERT INTO tenant_jobs ({cols}) VALUES ({vals})", r)


def measure(st, claims, batch=32):
    "Median ms of one claim of `batch` jobs (each followed by finishing what it claimed)."
    out = []
    for _ in range(claims):
        t = time.perf_counter()
        rows = st.claim_due(time.time(), 60, 'bench', batch)
        out.append((time.perf_counter() - t) * 1e3)
        assert len(rows) == batch, len(rows)
        for r in rows: st.finish(r['id'], r['attempt'], 'completed', time.time())
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', default='1000,10000,100000', help='backlogs to measure, comma-separated')
    ap.add_argument('--claims', type=int, default=20, help='claims timed per backlog; the figure is their median')
    ap.add_argument('--only', choices=['sqlite', 'pg'], help='one backend only')
    ap.add_argument('--out', type=Path, default=HERE / 'results', help='folder for backlog.md and backlog.json')
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(',')]
    res, tmp = {}, Path(tempfile.mkdtemp(prefix='bench-backlog-'))
    if a.only != 'pg':
        for n in sizes:
            st = JobStore(f"sqlite:///{tmp}/b{n}.db"); fill(st, n + a.claims * 32)
            res[f"sqlite {n}"] = measure(st, a.claims); st.close()
            print(f"SQLite     backlog {n:>7,}: {res[f'sqlite {n}']:.2f} ms per claim of 32", flush=True)
    if a.only != 'sqlite':
        from pgserver import PgServer
        from fh_saas.pg import PgHost, PgJobStore
        with PgServer() as pg:
            host = PgHost(pg.url)
            for n in sizes:
                st = PgJobStore(host.create(f"b{n}")); fill(st, n + 2 * a.claims * 32)  # never below n
                res[f"pg {n}"] = measure(st, a.claims)
                st._exec("ANALYZE tenant_jobs")  # what autovacuum does within a minute or so of the burst
                res[f"pga {n}"] = measure(st, a.claims)
                print(f"PostgreSQL backlog {n:>7,}: {res[f'pg {n}']:.2f} ms per claim of 32, "
                      f"{res[f'pga {n}']:.2f} ms once analyzed", flush=True)
    cmd = shlex.join(['.venv/bin/python', 'bench/bench_backlog.py'] + sys.argv[1:])
    date = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    L = [f"Produced by `{cmd}` on {date}, {platform.platform()}, {os.cpu_count()} cores. Median of {a.claims} claims "
         "of 32 due jobs, each followed by finishing them, with at least the backlog still waiting; the backlog inserted in one transaction.", '',
         '| backlog | ' + ' | '.join(f"{n:,}" for n in sizes) + ' |', '|---|' + '---:|' * len(sizes)]
    for b, label in (('sqlite', 'SQLite, ms per claim'), ('pg', 'PostgreSQL, statistics from before the backlog'),
                     ('pga', 'PostgreSQL, once the table was analyzed')):
        if any(k.startswith(b + ' ') for k in res):
            L.append(f"| {label} | " + ' | '.join(f"{res[f'{b} {n}']:.2f}" for n in sizes) + ' |')
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / 'backlog.md').write_text('\n'.join(L) + '\n')
    (a.out / 'backlog.json').write_text(json.dumps(dict(command=cmd, date=date, ms_per_claim=res), indent=1) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
