"""Where a `bg_task` job's time goes on SQLite, split in two: SQLite's statements alone, and fh-saas's Python alone.

Each row is timed end to end (a job submitted, then its `bg_task` run at once), a no-op task, one tenant file:

  statements alone        fh-saas's three statements (`bench/systems/sqlite3_table.py`'s: the insert `submit` makes,
                          the claim by id, the usual finish) with fh-saas's parameters, sent by a bare loop on one
                          connection to a file with fh-saas's schema, its log left to grow (no checkpoint), as the
                          harness's `sqlite3_table_nockpt`; the log frames a job writes are counted
  ... no secondary index  the same on the table alone: none of its six secondary indexes (the dashboard's three
                          orders, the claim's order, the next due time, the idempotency key)
  fh-saas's Python alone  `manager.submit(...)`, then its `bg_task` awaited, every statement answered with what
                          SQLite would answer (a claimed row, one row changed) instead of being sent: the connection
                          is still lent and taken back and the log's size still watched, nothing reaches SQLite
  ... statements beside   fh-saas's Python alone (async task), each statement also sent, as it is, on a bare
                          connection to a file of its own (no checkpoint): the time inside those statements and the
                          time outside them, to compare with the two rows alone; once more with that side file in
                          memory (`:memory:`): SQLite's own work with no file, no system call
  fh-saas                 the same, with SQLite: the harness's `fh_sqlite_async` and `fh_sqlite_sync`; once with
                          the store's checkpoints off (`CHECK_WAL_EVERY` out of reach: the log left to grow)

Each row in a fresh process per repetition, the repetitions interleaved, on asyncio's loop; the median. Writes
bench/results/split_bg.md; no assertion, it reports.

    .venv/bin/python bench/split_bg.py [--jobs 3000] [--reps 5]
"""
import argparse, asyncio, json, os, shlex, sqlite3, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / 'results' / 'split_bg.md'
ROWS = ['statements alone', 'statements alone, no secondary index', "fh-saas's Python alone, async task",
        "fh-saas's Python alone, sync task", "fh-saas's Python alone, async task, statements beside",
        "fh-saas's Python alone, async task, statements beside, in memory",
        'fh-saas, async task, no checkpoint', 'fh-saas, async task', 'fh-saas, sync task']


async def anoop(): return None
def noop(): return None


def statements(n: int, indexes: bool) -> dict:
    "Seconds `n` jobs' three statements take on a bare connection, and the log frames a job writes."
    from fh_saas.db_host import gen_id, timestamp, PAGE_SIZE
    from fh_saas.store import _CLAIM_ONE, _FINISH_QUICK, _finish_args, _now_row
    from systems.sqlite3_table import INSERT
    path = Path(tempfile.mkdtemp()) / 't.db'
    db = _bare(path, indexes)
    inside, run = 0.0, time.perf_counter
    t0 = run()
    for _ in range(n):
        jid, t = gen_id(), time.time(); ts = timestamp(t)
        a = run()
        db.execute(INSERT, dict(id=jid, job_type='noop', status='pending', payload='{}', created_at=ts, max_retries=3,
                                run_at=t, func_path='split_bg:anoop', timeout=None, idem_key=None, updated_at=ts, priority=0))
        inside += run() - a
        t = time.time(); args = dict(_now_row(t), id=jid, lease=t + 30, worker='bench', claim=gen_id())
        a = run(); (row,) = db.execute(_CLAIM_ONE, args).fetchall(); inside += run() - a
        args = _finish_args(jid, row[4], 'completed', time.time(), 'null')
        a = run(); assert db.execute(_FINISH_QUICK, args).rowcount == 1; inside += run() - a
    secs = run() - t0
    frames = os.path.getsize(f"{path}-wal") / (PAGE_SIZE + 24) / n
    db.close()
    return dict(secs=secs, frames=frames, inside=inside)


async def fh(n: int, task, canned: bool, beside: str | None = None, checkpoints: bool = True) -> dict:
    "Seconds `n` jobs take through `submit` and the `bg_task`, with SQLite or with its answers canned (and sent `beside`)."
    from fh_saas import store
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    if not checkpoints: store.CHECK_WAL_EVERY = 10 ** 15  # the log's size never looked at: no checkpoint, no pause
    side = _bare(Path(tempfile.mkdtemp()) / 'side.db' if beside == 'file' else ':memory:') if beside else None
    inside, run = [0.0], time.perf_counter
    mgr = BackgroundTaskManager(f"sqlite:///{tempfile.mkdtemp()}/t.db", create=True)
    st = mgr.store
    for _ in range(20): await mgr.submit('noop', task)[1]()  # warm: the function resolved, the connections open
    if canned:
        fp = f"{__name__}:{task.__name__}"
        def one(sql, args, rows):  # what SQLite answers these three statements, with the store's lending around it
            c, wait = st._lend()
            if side is not None:  # the statement itself, on a connection of its own: its time counted apart
                a = run(); cur = side.execute(sql, args); cur.fetchall() if rows else cur.rowcount; inside[0] += run() - a
            st._back(c, wait)
            if sql.startswith('UPDATE') and 'RETURNING' in sql:  # the claim: the row it moved to running
                return [dict(id=args['id'], job_type='noop', payload='{}', func_path=fp, attempt=1, retry_count=0,
                             max_retries=3, timeout=None, error_log='[]', cancel_requested=0, run_at=args['now'])]
            return [] if rows else 1  # the insert and the finish: one row changed
        st._one = one
    t0 = time.perf_counter()
    for _ in range(n): await mgr.submit('noop', task)[1]()
    secs = time.perf_counter() - t0
    if not canned: assert mgr.count_jobs(status='completed') == n + 20
    while st._ckpt: await asyncio.sleep(0.001)  # a checkpoint still running: it ends before the files go
    st.close()
    return dict(secs=secs, inside=inside[0]) if beside else dict(secs=secs)


def _bare(where, indexes: bool = True):
    "A bare autocommit connection to a new file `where` (or `':memory:'`) with fh-saas's table and settings, and no checkpoint: the log only grows."
    from fh_saas.db_host import PAGE_SIZE
    from fh_saas.jobs import SCHEMA, INDEXES
    db = sqlite3.connect(where, isolation_level=None)
    db.execute(f'PRAGMA page_size={PAGE_SIZE}')
    if where != ':memory:':
        db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=NORMAL'); db.execute('PRAGMA wal_autocheckpoint=0')
    db.executescript(SCHEMA + INDEXES if indexes else SCHEMA.split('CREATE INDEX')[0])  # the table, with or without its indexes
    return db


def child(row: str, n: int) -> dict:
    "One row's run, its files in a directory removed after it (a log left to grow is some 90 MB)."
    with tempfile.TemporaryDirectory() as d:
        tempfile.tempdir = d
        try: return _child(row, n)
        finally: tempfile.tempdir = None


def _child(row: str, n: int) -> dict:
    if row.startswith('statements'): return statements(n, 'no secondary' not in row)
    task = anoop if 'async' in row else noop
    return asyncio.run(fh(n, task, 'alone' in row, beside=('memory' if 'memory' in row else 'file') if 'beside' in row else None, checkpoints='no checkpoint' not in row))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=3000); ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--child')
    a = ap.parse_args()
    if a.child: return print(json.dumps(child(a.child, a.jobs)))
    got = {r: [] for r in ROWS}
    for rep in range(a.reps):
        for r in ROWS:
            os.sync()  # what the last row wrote goes to disk now, not during this one
            p = subprocess.run([sys.executable, __file__, '--child', r, '--jobs', str(a.jobs)], capture_output=True,
                               text=True, timeout=600, cwd=Path(__file__).parent)
            if p.returncode: sys.exit(f"{r}: {p.stderr.strip().splitlines()[-1]}")
            got[r].append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(f"rep {rep + 1}/{a.reps} {r:65} {1e6 * got[r][-1]['secs'] / a.jobs:7.1f} us a job", flush=True)
    cmd = shlex.join(['.venv/bin/python', 'bench/split_bg.py'] + sys.argv[1:])
    L = ["# A `bg_task` job's time on SQLite: the statements alone, fh-saas's Python alone", "",
         f"Produced by `{cmd}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {a.jobs:,} no-op jobs end to end "
         f"(each submitted, then its `bg_task` run); median of {a.reps} repetitions, each a fresh process, interleaved, "
         "on asyncio's loop (see the script's docstring for what each row runs).", "",
         "*In SQLite*: the time inside the statements' calls (a bare loop's, or those sent beside); *outside*: the rest.", "",
         "| what runs | us a job | jobs/s | in SQLite | outside | log frames a job | range (us a job) |",
         "|---|---:|---:|---:|---:|---:|---|"]
    med = lambda r, k: statistics.median(g[k] for g in got[r])  # noqa: E731
    for r in ROWS:
        us = [1e6 * g['secs'] / a.jobs for g in got[r]]
        m = statistics.median(us)
        ins = 1e6 * med(r, 'inside') / a.jobs if 'inside' in got[r][0] else None
        cells = [f"{m:.1f}", f"{1e6 / m:,.0f}", '-' if ins is None else f"{ins:.1f}", '-' if ins is None else f"{m - ins:.1f}",
                 f"{med(r, 'frames'):.1f}" if 'frames' in got[r][0] else '-', f"{min(us):.1f}-{max(us):.1f}"]
        L.append(f"| {r} | " + ' | '.join(cells) + ' |')
    OUT.write_text('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
