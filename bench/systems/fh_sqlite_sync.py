"""fh-saas on one tenant SQLite file (WAL + synchronous NORMAL, the default), in the web process: `submit`, then
the `bg_task` awaited, as Starlette does once a route's response is sent. A sync task runs in a job thread."""
import time
from pathlib import Path
from fh_saas.utils_bgtsk import BackgroundTaskManager, JobStore

LABEL = 'fh-saas SQLite, sync task, `bg_task` path'
BACKEND, PROCESS = 'sqlite', False


def noop(): return None


class System:
    task = staticmethod(noop)

    async def setup(self, where):
        self.mgr = BackgroundTaskManager(JobStore(f"sqlite:///{Path(where) / 'tenant.db'}"))
        self.running, self.waiting, self.times = False, [], {}

    async def _run(self, jid, bg):
        t = time.time()
        await bg()
        self.times[jid] = (t, time.time())

    async def start(self):  # drain: the `bg_task`s kept while nothing ran, now awaited in turn
        self.running = True
        for jid, bg in self.waiting: await self._run(jid, bg)

    async def submit(self):
        jid, bg = self.mgr.submit('noop', self.task)
        if self.running: await self._run(jid, bg)
        else: self.waiting.append((jid, bg))
        return jid

    async def done(self, keys):
        bad = [k for k in keys if self.mgr.get_job(k).status != 'completed']
        assert not bad, f"{len(bad)} jobs not completed"
        return {k: self.times[k] for k in keys}

    async def stop(self): self.mgr.store.close()
