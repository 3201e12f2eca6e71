"""fh-saas's own pieces called in a straight line on the `bg_task` path, async task: what a runner keeping fh-saas's
rows, promises and bounded log spends with nothing between the pieces, measured in one loop. A submission is checked
and its row made (`_new_row`) and inserted (`JobStore.insert`, on the store's pooled connections, its log kept bounded
by its checkpoint thread); then a slot is taken, the job claimed by id (`JobStore.claim`), its function resolved from
the row, its context and lease registered, the task awaited with its context set, the outcome settled, classified
by the retry rules and written (`JobStore.finish`), the hooks told, the lease and the slot given back. None of the
handling of a claim that missed, a busy file, a retry, a cancel, a progress report or a scheduler serving the
tenant, which fh-saas's `bg_task` path carries: what that handling and the calls around it cost is the difference
from `fh_sqlite_async.py`. Where the harness's *least* adds these pieces, timed alone by `bench/runner_essentials.py`,
to the floor, this runs them beside SQLite's statements, as a runner does: the two share one core's caches."""
import time
from pathlib import Path
from fh_saas.jobs import _submitted, func_path
from fh_saas.runner import Runner, JobThreads, settle, classify, call_async, _tell
from fh_saas.utils_bgtsk import BackgroundTaskManager, JobStore

LABEL = "fh-saas's pieces in a straight line, async task, `bg_task` path"
BACKEND, PROCESS = 'sqlite', False


async def anoop(): return None


def _now(st, fn, *args):
    "A store call on the loop with no wait for the lock (`JobStore.inline`); while the log restarts, one that waits for it."
    ok, r = st.inline(fn, *args)
    return r if ok else fn(*args)


class System:
    task = staticmethod(anoop)

    def attempt(self, fn, kwargs, ctx, row):
        "The task's attempt: awaited on the loop, with its context set and its cancel hook (`call_async`)."
        return call_async(fn, kwargs, ctx, row['timeout'])

    async def setup(self, where):
        self.mgr = BackgroundTaskManager(JobStore(f"sqlite:///{Path(where) / 'tenant.db'}"))
        self.st, self.r = self.mgr.store, Runner(self.mgr.store, threads=JobThreads(16))
        _submitted.add(func_path(self.task))  # submitted in this process: it may run here
        self.running, self.waiting, self.times = False, [], {}

    async def _run(self, jid):
        t, r, st = time.time(), self.r, self.st
        await r.threads.acquire()
        try:
            row = _now(st, st.claim, jid, t, r.lease, r.me)
            fn, kwargs, out = r._prepare(row)
            ctx = r._start(row)
            try:
                out = settle(await self.attempt(fn, kwargs, ctx, row), ctx, row['timeout'])
                now = time.time()
                status, f = classify(row, out, now, r.policy)
                written = _now(st, st.finish, row['id'], row['attempt'], status, now, f['result'], f['error_log'])
                assert written == 'completed', written
                _tell(st, row, written, out, ctx, now)
            finally: r._end(ctx)
        finally: r.threads.give()
        self.times[jid] = (t, time.time())

    async def start(self):
        self.running = True
        for jid in self.waiting: await self._run(jid)

    async def submit(self):
        row = self.mgr._new_row('noop', self.task, {}, 3, None, None, None, None)
        jid = _now(self.st, self.st.insert, row)
        assert jid == row['id']
        if self.running: await self._run(jid)
        else: self.waiting.append(jid)
        return jid

    async def done(self, keys):
        bad = [k for k in keys if self.mgr.get_job(k).status != 'completed']
        assert not bad, f"{len(bad)} jobs not completed"
        return {k: self.times[k] for k in keys}

    async def stop(self): self.st.close()
