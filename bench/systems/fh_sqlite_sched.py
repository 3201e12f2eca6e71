"""fh-saas on one tenant SQLite file with its in-app `Scheduler` running, as an app deploys it
(`fast_app(lifespan=scheduler.lifespan)`, the demo's set-up, default settings): `submit`, then its `bg_task`
awaited (with a scheduler in the app it only wakes it), then the loop is free, as it is between requests. The
scheduler claims the due jobs and runs them on the event loop, an async task, several at once. Times are what the
runner tells its outcome hooks: when an attempt started, and when its outcome was written. It runs on asyncio's own
event loop; `fh_sqlite_sched_uvloop.py` runs it on uvloop, the loop uvicorn serves a FastHTML app on."""
import asyncio, time
from contextlib import AsyncExitStack
from fh_saas.db_host import SqliteHost
from fh_saas.runner import outcome_hooks
from fh_saas.scheduler import Scheduler
from fh_saas.utils_bgtsk import BackgroundTaskManager
from systems import all_in, until

LABEL = 'fh-saas SQLite, async task, in-app scheduler'
BACKEND, PROCESS = 'sqlite', False


async def anoop(): return None


class System:
    task = staticmethod(anoop)

    async def setup(self, where):
        host = SqliteHost(where); host.create('tenant')
        self.sched = Scheduler(host, task_modules=[__name__])  # its defaults, as the demo app
        self.mgr, self.times, self.stack = BackgroundTaskManager(host.url('tenant')), {}, None
        outcome_hooks.append(self._told)

    def _told(self, store, row, outcome, started, ended):
        if outcome == 'completed': self.times[row['id']] = (started, ended)

    async def start(self):
        self.stack = AsyncExitStack()
        await self.stack.enter_async_context(self.sched.running())

    async def submit(self):
        jid, bg = self.mgr.submit('noop', self.task)
        if self.stack is None: return jid  # the drain: rows left by an app that stopped before it ran them
        await bg()
        await asyncio.sleep(0)  # the loop is free between two requests
        return jid

    async def done(self, keys):
        await until(all_in(keys, self.times))  # the loop runs the jobs too: a check that rereads every key would cost them
        return {k: self.times[k] for k in keys}

    async def stop(self):
        if self.stack is not None: await self.stack.aclose()
        outcome_hooks.remove(self._told)
        self.mgr.store.close()
