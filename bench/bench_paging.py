"""Paging benchmark: reading a page of one tenant's jobs, newest first, at a million rows (issue 14, item 3).

One tenant SQLite file gets N rows (default 1,000,000) through the real schema (bulk-inserted with sqlite3 for speed:
the benchmark measures reads, not writes). Then, through `BackgroundTaskManager` as an app reads them:
  - page 1 (`list_jobs(limit=20)`),
  - the page at row N/2 by `offset` (the database reads every row it skips),
  - the page at row N/2 by cursor (`before=job.cursor`: starts right after the row, through the index),
  - the same with a status filter,
  - `count_jobs()` (a full COUNT), and `count_jobs(most=1000)` (stops at 1,000).
Each is the median of `--repeat` runs on a warm file. No timing assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_paging.py [--rows 1000000] [--repeat 7]
"""
import argparse, json, sqlite3, statistics, sys, tempfile, time
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def fill(path:Path, n:int):
    from fh_saas.db_host import gen_id, timestamp
    from fh_saas.store import store_for
    store_for(path, create=True)                       # the real schema, indexes and migrations
    c = sqlite3.connect(path); t0 = time.time() - n / 1000
    rows = ((gen_id(), 'sync', ('completed', 'failed', 'pending')[k % 3], '{}', timestamp(t0 + k / 1000), t0 + k / 1000,
             timestamp(t0 + k / 1000)) for k in range(n))
    c.executemany("INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, run_at, updated_at) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    c.commit(); c.execute('ANALYZE'); c.close()

def ms(fn, repeat:int) -> float:
    fn()                                               # warm
    return statistics.median([(lambda t: (fn(), perf_counter() - t)[1])(perf_counter()) for _ in range(repeat)]) * 1000

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--repeat', type=int, default=7)
    o = ap.parse_args()
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    path = Path(tempfile.mkdtemp())/'big.db'
    t = perf_counter(); fill(path, o.rows); filled = perf_counter() - t
    m = BackgroundTaskManager(str(path))
    mid = m.store.query(limit=1, offset=o.rows // 2)[0]
    cur = f"{mid['created_at']}~{mid['id']}"
    midf = m.store.query(status='failed', limit=1, offset=o.rows // 6)[0]
    curf = f"{midf['created_at']}~{midf['id']}"
    assert [j.id for j in m.list_jobs(limit=20, before=cur)] == [j.id for j in m.list_jobs(limit=20, offset=o.rows // 2 + 1)]
    res = {
        'page 1': ms(lambda: m.list_jobs(limit=20), o.repeat),
        f'page at row {o.rows // 2:,} by offset': ms(lambda: m.list_jobs(limit=20, offset=o.rows // 2), o.repeat),
        f'page at row {o.rows // 2:,} by cursor': ms(lambda: m.list_jobs(limit=20, before=cur), o.repeat),
        'failed jobs, page 1': ms(lambda: m.list_jobs(status='failed', limit=20), o.repeat),
        f'failed jobs, page at row {o.rows // 6:,} by offset': ms(lambda: m.list_jobs(status='failed', limit=20, offset=o.rows // 6), o.repeat),
        f'failed jobs, page at row {o.rows // 6:,} by cursor': ms(lambda: m.list_jobs(status='failed', limit=20, before=curf), o.repeat),
        'count_jobs()': ms(lambda: m.count_jobs(), o.repeat),
        'count_jobs(most=1000)': ms(lambda: m.count_jobs(most=1000), o.repeat),
    }
    lines = [f"# Paging at {o.rows:,} rows in one tenant (SQLite)", '',
             f"`.venv/bin/python bench/bench_paging.py --rows {o.rows}` (median of {o.repeat}; filling took {filled:.0f} s)", '',
             '| read | ms |', '|---|---:|'] + [f"| {k} | {v:.2f} |" for k, v in res.items()]
    out = '\n'.join(lines) + '\n'
    print(out)
    (ROOT/'bench'/'results'/'paging.md').write_text(out)
    (ROOT/'bench'/'results'/'paging.json').write_text(json.dumps(dict(rows=o.rows, ms=res), indent=1))

if __name__ == '__main__': main()
