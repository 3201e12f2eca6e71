"""The next due time and the overdue count, read from the claim index a priority at a time (`JobStore.due_times`,
`JobStore.overdue`), against the index in `run_at` order that served them before it was dropped.

One tenant SQLite file gets N waiting jobs (default 200,000, bulk-inserted with sqlite3 through the real schema: this
measures reads; no ANALYZE, as fh-saas runs none), their due times spread over the next 1,100 s with 10 % already
due, at 1, 5, 34 and 201 distinct priorities (201: every priority there is, -100 to 100). Then the statements
`due_times()` and `overdue(now)` send, and `due_times()` itself through the store; and the same file again with the
dropped index made back (`tenant_jobs_waiting`, `(status, run_at)` on waiting jobs) and the one-statement reads it
served, each statement on a bare connection. Each figure is the median of `--repeat` runs of 200 calls on a warm
file, in microseconds a call. No timing assertion: it reports.

    .venv/bin/python bench/bench_due.py [--rows 200000] [--repeat 7]
"""
import argparse, random, sqlite3, statistics, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / 'bench' / 'results' / 'due.md'
from fh_saas.jobs import DUE_INDEX
from fh_saas.pg import PgJobStore
#: what the index in `run_at` order serves, in one statement each: the reads SQLite made before it was dropped, and
#: PostgreSQL's, which keeps it
OLD_DUE, OLD_OVERDUE = PgJobStore._due_sql, PgJobStore._overdue_sql


def fill(path: Path, n: int, priorities: int, now: float):
    from fh_saas.db_host import gen_id, timestamp
    from fh_saas.store import store_for
    store_for(f"sqlite:///{path}", create=True).close()  # the real schema and indexes
    rnd, ts = random.Random(1), timestamp(now)
    pri = [round(-100 + 200 * i / (priorities - 1)) for i in range(priorities)] if priorities > 1 else [0]
    with sqlite3.connect(path) as c:
        c.executemany("INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, run_at, updated_at, priority) "
                      "VALUES (?, 'sync', 'pending', '{}', ?, ?, ?, ?)",
                      ((gen_id(), ts, now + rnd.uniform(-100, 1000), ts, rnd.choice(pri)) for _ in range(n)))


def timed(fn, repeat: int) -> float:
    "Microseconds a call, median of `repeat` runs of 200 calls."
    fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(200): fn()
        runs.append((time.perf_counter() - t) / 200 * 1e6)
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', type=int, default=200_000); ap.add_argument('--repeat', type=int, default=7)
    a = ap.parse_args()
    from fh_saas.store import JobStore
    L = ["# The next due time and the overdue count, at a backlog", "",
         f"Produced by `.venv/bin/python bench/bench_due.py --rows {a.rows} --repeat {a.repeat}` on "
         f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {a.rows:,} waiting jobs in one tenant file, their due times "
         "over the next 1,100 s (10 % already due); microseconds a call, the median of "
         f"{a.repeat} runs of 200 calls on a warm file. *Due time*, *overdue count*: the statements `due_times()` and "
         "`overdue(now)` send, on a bare connection; *before*: the same file with the dropped `(status, run_at)` index "
         "made back, and the one-statement reads it served, on a bare connection; *through the store*: `due_times()` "
         "itself, on the store's pooled connection, its row made a dict.", "",
         "| priorities | due time | before | `due_times()`, through the store | overdue count | before | overdue jobs |",
         "|---:|---:|---:|---:|---:|---:|---:|"]
    for k in (1, 5, 34, 201):
        with tempfile.TemporaryDirectory() as d:
            path, now = Path(d) / 't.db', time.time()
            fill(path, a.rows, k, now)
            st, sent = JobStore(f"sqlite:///{path}"), []
            real = st._exec  # the statements the two reads send, to time them bare as the ones before
            st._exec = lambda sql, args=None, again=None: sent.append((sql, args)) or real(sql, args)
            first, n = st.due_times()[0], st.overdue(now)
            st._exec = real
            store_due = timed(st.due_times, a.repeat)  # through the store: its pooled connection, rows as dicts
            st.close()
            db = sqlite3.connect(path)
            (due_sql, _), (over_sql, over_args) = sent
            due, over = (timed(lambda: db.execute(due_sql).fetchall(), a.repeat),
                         timed(lambda: db.execute(over_sql, over_args).fetchall(), a.repeat))
            db.execute(DUE_INDEX)
            db.commit()
            assert db.execute(OLD_DUE).fetchone()[0] == first and db.execute(OLD_OVERDUE, dict(t=now)).fetchone()[0] == n
            old_due = timed(lambda: db.execute(OLD_DUE).fetchall(), a.repeat)
            old_over = timed(lambda: db.execute(OLD_OVERDUE, dict(t=now)).fetchall(), a.repeat)
            db.close()
        L.append(f"| {k} | {due:,.1f} | {old_due:,.1f} | {store_due:,.1f} | {over:,.1f} | {old_over:,.1f} | {n:,} |")
        print(L[-1], flush=True)
    OUT.write_text('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
