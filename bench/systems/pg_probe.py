"""A probe for `bench/pg_latency_split.py`, imported by the `fh-saas-worker` processes it starts (`--imports`): it
appends, for each job, when the worker's claim statement was sent and answered (in the I/O thread), when the event
loop started the job's task, and when the task body began, to the file `$PG_PROBE` (one short line each; an
`O_APPEND` write under a lock). Not used by the harness."""
import os, threading, time
from fh_saas import pg, scheduler
from fh_saas.utils_bgtsk import current_job
from systems import fh_pg

OUT, _lock = os.environ.get('PG_PROBE'), threading.Lock()


def note(*fields):
    with _lock, open(OUT, 'a') as f: f.write(' '.join(map(str, fields)) + '\n')


_claim_batch, _spawn = pg.PgJobStore.claim_batch, scheduler.Scheduler._spawn


def claim_batch(items, now, lease, worker):
    t0 = time.time(); rows = _claim_batch(items, now, lease, worker); t1 = time.time()
    for r in (r for rs in rows for r in rs or ()): note('claim', r['id'], now, t0, t1)
    return rows


def spawn(self, st, row):
    note('spawn', row['id'], time.time()); return _spawn(self, st, row)


async def anoop():
    "`fh_pg.anoop`, noting when its body began."
    note('task', current_job().id, time.time())


if OUT:
    pg.PgJobStore.claim_batch, scheduler.Scheduler._spawn, fh_pg.anoop = staticmethod(claim_batch), spawn, anoop
