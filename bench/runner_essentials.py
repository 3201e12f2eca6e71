"""What the least Python a runner on the SQLite `bg_task` path must run costs, beside fh-saas's own submission checks.

The floor `bench/systems/sqlite3_table.py` spends nothing in Python beyond its three statements. A runner cannot:
it must check the submission, make an id and times, read the stored arguments, run the task in a task of its own
with its context set, and store the result. This times exactly that, with no database, no lease, no retry rules,
no hooks (`essentials`), the part of it that follows the row's write (what a drain of written jobs must do), and
fh-saas's own submission checks and row (`_new_row`) alone. Prints the three, best of 5. For a sync task
(`sync=True`) the task is called in place with its context set, as a job thread calls it: the hand-off to the thread
and back is in the floor under a sync task (`bench/systems/sqlite3_table_thread.py`), not here. `bench/harness.py`
measures all four in its run (`measure()`) and judges each SQLite target against its floor plus these.

    .venv/bin/python bench/runner_essentials.py
"""
import asyncio, contextvars, inspect, json, tempfile, time
from fh_saas.db_host import gen_id, timestamp
from fh_saas.jobs import COLUMNS
from fh_saas.utils_bgtsk import BackgroundTaskManager

N = 20_000
async def anoop(): return None
def noop(): return None
current = contextvars.ContextVar('current', default=None)


async def essentials(submit:bool=True, sync:bool=False) -> float:
    "Microseconds a job for the essentials alone (`submit=False`: only what follows the row's write, a drain's share; `sync`: a sync task)."
    loop, sig, row = asyncio.get_running_loop(), inspect.signature(anoop), dict.fromkeys(COLUMNS)
    row['payload'] = '{}'
    t = time.perf_counter()
    for _ in range(N):
        if submit: kwargs = {}; sig.bind(**kwargs); json.dumps(kwargs); gen_id(); timestamp(time.time())   # the submission
        r = dict(row); kw = json.loads(r['payload'])                                          # the claimed row
        token = current.set(r)
        result = noop(**kw) if sync else await loop.create_task(anoop(**kw))                 # the task, its context
        current.reset(token)
        json.dumps(result); timestamp(time.time())                                            # the outcome
    return (time.perf_counter() - t) / N * 1e6


async def guarantees() -> float:
    """Microseconds a job for what fh-saas's runner keeps for each attempt beyond the essentials, written straight, with
    no database and no task run (the essentials time that): a slot taken and given back, the function resolved from
    the row (only declared tasks run: `Runner._prepare`), the attempt's context and its lease registered with the
    lease keeper from claim to outcome and then removed, the outcome settled and classified by the retry rules, and
    the outcome hooks told. What a runner keeping fh-saas's promises adds to the essentials, at the least."""
    from fh_saas.jobs import func_path, _submitted
    from fh_saas.runner import Runner, JobThreads, Outcome, classify, settle, _tell
    st = BackgroundTaskManager(tempfile.mkdtemp() + '/t.db', create=True).store
    r, path = Runner(st, threads=JobThreads(8)), func_path(anoop)
    _submitted.add(path)  # submitted in this process: it may run here
    row = dict.fromkeys(COLUMNS) | dict(id=gen_id(), job_type='noop', payload='{}', func_path=path, attempt=1,
                                         retry_count=0, max_retries=3, cancel_requested=0)
    ok = Outcome('ok', None)
    t = time.perf_counter()
    for _ in range(N):
        await r.threads.acquire()
        try:
            fn, kwargs, out = r._prepare(row)
            ctx = r._start(row)
            try:
                out = settle(ok, ctx, row['timeout'])
                status, fields = classify(row, out, time.time(), r.policy)
                _tell(st, row, status, out, ctx, time.time())
            finally: r._end(ctx)
        finally: r.threads.give()
    return (time.perf_counter() - t) / N * 1e6


def pool() -> float:
    """Microseconds a statement for lending a pooled connection and taking it back (`JobStore._lend`, `_back`), the
    log's size looked at every `CHECK_WAL_EVERY` statements: what a store shared by the event loop, job threads, the
    lease keeper and its checkpoint thread, with its open files capped across thousands of tenants, pays a statement."""
    st = BackgroundTaskManager(tempfile.mkdtemp() + '/t.db', create=True).store
    st._tls.wait = 0.0  # the event loop's kind: never waits for a lock
    t = time.perf_counter()
    for _ in range(N): st._back(*st._lend())
    return (time.perf_counter() - t) / N * 1e6


def checks() -> float:
    "Microseconds a job for fh-saas's submission checks and row (`_new_row`)."
    m = BackgroundTaskManager(tempfile.mkdtemp() + '/t.db', create=True)
    t = time.perf_counter()
    for _ in range(N): m._new_row('noop', anoop, {}, 3, None, None, None, None)
    return (time.perf_counter() - t) / N * 1e6


def measure(best_of:int=3) -> dict:
    """The essentials in microseconds a job, best of `best_of`, `{'async': {'e2e': us, 'drain': us}, 'sync': {...}}`,
    with `'guarantees'`: what fh-saas's runner keeps beyond them (`guarantees`) and `'pool'`: a statement's connection
    lent and taken back (`pool`)."""
    r = {kind: {k: min(asyncio.run(essentials(submit=k == 'e2e', sync=kind == 'sync')) for _ in range(best_of))
                for k in ('e2e', 'drain')} for kind in ('async', 'sync')}
    return r | dict(guarantees=min(asyncio.run(guarantees()) for _ in range(best_of)),
                    pool=min(pool() for _ in range(best_of)))


if __name__ == '__main__':
    ess = min(asyncio.run(essentials()) for _ in range(5))
    run = min(asyncio.run(essentials(submit=False)) for _ in range(5))
    chk = min(checks() for _ in range(5))
    gua = min(asyncio.run(guarantees()) for _ in range(5))
    poo = min(pool() for _ in range(5))
    print(f"essentials of a runner: {ess:.1f} us a job, {run:.1f} of them once the row is written (a drain's share); "
          f"fh-saas's submission checks and row alone: {chk:.1f} us; what its runner keeps beyond the essentials: "
          f"{gua:.1f} us; a pooled connection lent and taken back: {poo:.1f} us a statement (best of 5)")
