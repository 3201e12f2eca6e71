"""`fh_sqlite_async_straight.py` with a sync task: fh-saas's own pieces called in a straight line on the `bg_task`
path, measured in one loop. The task is called in one of the runner's job threads with its context set
(`call_sync`), and its outcome handed back to the loop, which writes it. No scope holds off a cancel while the
thread runs (fh-saas's own path holds one)."""
from fh_saas.runner import call_sync
from systems import fh_sqlite_async_straight

LABEL = "fh-saas's pieces in a straight line, sync task, `bg_task` path"
BACKEND, PROCESS = 'sqlite', False


def noop(): return None


class System(fh_sqlite_async_straight.System):
    task = staticmethod(noop)

    def attempt(self, fn, kwargs, ctx, row):
        "The task's attempt in a job thread (`call_sync`), awaited on the loop."
        return self.r.threads.run(call_sync, fn, kwargs, ctx)
