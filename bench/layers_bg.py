"""Where the `bg_task` path spends its time on SQLite, layer by layer (issue 14's item 2).

The same no-op async jobs in one tenant file, end to end (each job submitted, then run at once) and drained (all
written first, then run in turn), five ways, each adding one layer of fh-saas to the one before, so the difference
between two rows is what that layer costs a job:

  floor       fh-saas's own three statements (`bench/systems/sqlite3_table.py`'s: the insert `submit` makes, the
              claim by id, the usual finish) with fh-saas's parameters, on one connection, no checkpoint (the log
              grows): the harness's `sqlite3_table_nockpt`
  + store     each statement sent by the store as fh-saas sends it on the event loop (`JobStore.inline`): a pooled
              connection lent and given back, the log's size watched, the log copied into the database by the
              store's checkpoint thread and restarted in its short pauses; the claimed row made a dict
  + checks    the submission's checks and row (`BackgroundTaskManager._new_row`): the arguments bound to the
              function's signature, the job type, retries and payload checked (end to end only: a drain's rows are
              written before the clock starts)
  + runner    what the runner keeps for each attempt, written straight: a slot taken and given back, the function
              resolved from the row (`Runner._prepare`), the attempt's context and lease, registered with the lease
              keeper from claim to outcome, the task awaited with its context set and a cancel able to stop it
              (`call_async`), the outcome classified by the retry rules (`classify`) and told to the hooks
  fh-saas     `manager.submit(...)`, then its `bg_task` awaited, as Starlette does after the response: the harness's
              `fh_sqlite_async`. Its *added* is the layering between the calls above (`Runner.run`, `run_claimed`,
              `record`) and what it checks that the straight rows do not (a claim that missed, a progress report to
              write, a busy file)

Each row in a fresh process per repetition, the repetitions interleaved, on asyncio's loop. Median jobs/s and
microseconds a job (wall). Writes bench/results/layers_bg.md; no assertion, it reports.

    .venv/bin/python bench/layers_bg.py [--jobs 2000] [--reps 5]
"""
import argparse, asyncio, json, shlex, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent / 'results' / 'layers_bg.md'
LAYERS = ['floor', '+ store', '+ checks', '+ runner', 'fh-saas']
MEASURES = ['end to end', 'drain']


async def anoop(): return None


async def run(layer: str, measure: str, n: int) -> float:
    "Seconds `n` jobs take, end to end or drained, with the layers up to `layer`."
    from fh_saas.db_host import gen_id, timestamp
    from fh_saas.runner import call_async, classify, _tell
    from fh_saas.store import _CLAIM_ONE, _FINISH_QUICK, _finish_args, _now_row
    from fh_saas.jobs import func_path, _submitted
    from fh_saas.utils_bgtsk import BackgroundTaskManager
    from systems.sqlite3_table import INSERT
    mgr = BackgroundTaskManager(f"sqlite:///{tempfile.mkdtemp()}/t.db", create=True)
    st, r = mgr.store, mgr.runner
    db = st._connect(5.0)  # the floor's own connection: fh-saas's settings, no checkpoint
    if layer == 'floor':
        def send(sql, args, rows):
            cur = db.execute(sql, args); return cur.fetchall() if rows else cur.rowcount
    else:
        def send(sql, args, rows):  # as the store sends a statement on the loop; busy: wait in this thread, as a fallback
            ok, res = st.inline(st._one, sql, args, rows)
            return res if ok else st._one(sql, args, rows)
    fid = func_path(anoop); _submitted.add(fid)  # a function submitted in this process may run here

    def submit():
        if layer in ('floor', '+ store'):
            t = time.time(); ts = timestamp(t)
            row = dict(id=gen_id(), job_type='noop', status='pending', payload='{}', created_at=ts, max_retries=3,
                       run_at=t, func_path=fid, timeout=None, idem_key=None, updated_at=ts, priority=0)
        else: row = mgr._new_row('noop', anoop, {}, 3, None, None, None, None)
        send(INSERT, row, False)
        return row['id']

    async def go(jid, bg=None):
        if layer == 'fh-saas': return await bg()
        t = time.time()
        (row,) = send(_CLAIM_ONE, dict(_now_row(t), id=jid, lease=t + 30, worker=r.me, claim=gen_id()), True)
        if layer in ('floor', '+ store', '+ checks'):
            if layer != 'floor': row = dict(row)
            await anoop()
            assert send(_FINISH_QUICK, _finish_args(jid, row['attempt'], 'completed', time.time(), 'null'), False) == 1
            return
        await r.threads.acquire()
        try:
            row = dict(row)
            fn, kwargs, out = r._prepare(row)
            ctx = r._start(row)
            try:
                out = await call_async(fn, kwargs, ctx, row['timeout'])
                now = time.time(); status, f = classify(row, out, now, r.policy)
                assert send(_FINISH_QUICK, _finish_args(jid, row['attempt'], status, now, **f), False) == 1
                _tell(st, row, status, out, ctx, now)
            finally: r._end(ctx)
        finally: r.threads.give()

    bgs = {}
    if layer == 'fh-saas':
        def submit():  # noqa: F811: the manager's own submit, its `bg_task` kept
            jid, bg = mgr.submit('noop', anoop); bgs[jid] = bg; return jid
    if measure == 'drain':
        ids = [submit() for _ in range(n)]
        t0 = time.perf_counter()
        for jid in ids: await go(jid, bgs.get(jid))
    else:
        t0 = time.perf_counter()
        for _ in range(n):
            jid = submit(); await go(jid, bgs.get(jid))
    secs = time.perf_counter() - t0
    assert mgr.count_jobs(status='completed') == n, mgr.count_jobs(status='completed')
    db.close()
    return secs


def child(layer: str, measure: str, n: int):
    print(json.dumps(asyncio.run(run(layer, measure, n))))


def main():
    from layers_sqlite import interleaved, layer_rows  # beside this script: the same runs and the same table
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=2000); ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--child', nargs=2, metavar=('LAYER', 'MEASURE'))
    a = ap.parse_args()
    if a.child: return child(a.child[0], a.child[1], a.jobs)
    med = interleaved(__file__, LAYERS, MEASURES, a.jobs, a.reps)
    cmd = shlex.join(['.venv/bin/python', 'bench/layers_bg.py'] + sys.argv[1:])
    L = ["# The `bg_task` path on SQLite, layer by layer", "",
         f"Produced by `{cmd}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {a.jobs:,} no-op async jobs, end to "
         f"end (each submitted, then run) and drained (all written first); median of {a.reps} repetitions, each a fresh "
         "process, interleaved, on asyncio's loop. Each row adds one layer to the row above; *added* is what that layer "
         "costs a job (see the script's docstring).", "",
         "| layers | end to end jobs/s | us a job | added | drain jobs/s | us a job | added |", "|---|---:|---:|---:|---:|---:|---:|"]
    L += layer_rows(LAYERS, MEASURES, med, a.jobs)
    OUT.write_text('\n'.join(L) + '\n')
    print('\n'.join(L))


if __name__ == '__main__': main()
