"""The least a runner of sync tasks can spend on the `bg_task` path, measured in one loop rather than summed:
`sqlite3_table_thread_ckthread.py` (fh-saas's three statements, the log kept bounded from a thread; its own one
thread, not that floor's executor) plus only what any runner must do around them (`bench/runner_essentials.py`'s
essentials): the submission's arguments bound to the task's signature and serialised, the claimed row's arguments
read, the task called in a thread with its context set, its result serialised. The hand-off is the cheapest one
measured here: one thread waiting on a `queue.SimpleQueue`, its result handed back with `call_soon_threadsafe`, no
executor. No pool, no lease, no retry rules, no hooks, no fh-saas code on the path."""
import asyncio, contextvars, inspect, json, queue, threading, time
from fh_saas.db_host import gen_id, timestamp
from fh_saas.store import _CLAIM_ONE, _FINISH_QUICK, _finish_args, _now_row
from systems import sqlite3_table

LABEL = "the least a runner of sync tasks spends on fh-saas's table, measured, log kept from a thread"
BACKEND, PROCESS = 'sqlite', False

current = contextvars.ContextVar('current', default=None)
def noop(): return None
SIG = inspect.signature(noop)


def _serve(work):
    "The one thread: call each task with its context set, hand its result back to the loop."
    while True:
        loop, fut, fn, kw, ctx = work.get()
        token = current.set(ctx)
        try: r = fn(**kw)
        finally: current.reset(token)
        loop.call_soon_threadsafe(fut.set_result, r)


class System(sqlite3_table.System):
    checkpoints = 'thread'  # the log kept bounded from a thread, as `sqlite3_table_thread_ckthread.py` keeps it

    async def setup(self, where):
        await super().setup(where)
        self.work = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(self.work,), daemon=True).start()

    async def _run(self, jid):
        t = time.time()
        (row,) = self.db.execute(_CLAIM_ONE, dict(_now_row(t), id=jid, lease=t + 60, worker='bench', claim=gen_id())).fetchall()
        kw = json.loads(row[2])  # the stored arguments
        loop = asyncio.get_running_loop(); fut = loop.create_future()
        self.work.put((loop, fut, noop, kw, row)); r = await fut
        e = time.time()
        assert self.db.execute(_FINISH_QUICK, _finish_args(jid, row[4], 'completed', e, json.dumps(r))).rowcount == 1
        self.times[jid] = (t, e)

    async def submit(self):
        kwargs = {}; SIG.bind(**kwargs)  # the submission's arguments checked against the task
        jid, t = gen_id(), time.time(); ts = timestamp(t)
        self.db.execute(sqlite3_table.INSERT, dict(id=jid, job_type='noop', status='pending', payload=json.dumps(kwargs),
                                                   created_at=ts, max_retries=3, run_at=t, func_path='systems.sqlite3_table:noop',
                                                   timeout=None, idem_key=None, updated_at=ts, priority=0))
        if self.running: await self._run(jid)
        else: self.waiting.append(jid)
        return jid
