"""The floor on fh-saas's PostgreSQL tables: fh-saas's own two statements in a bare loop, no scheduler, no runner.
Two consumer processes (`python -m systems.fh_pg_floor URL K`), as `fh_pg.py` has two workers. Each, in a loop:
claims up to 8 due jobs from each of 4 tenants in one statement (`_claim_batch`, the statement the scheduler sends
with `--concurrency 32 --per-tenant 8`), runs each no-op, and records them all completed in one statement
(`FinishGroup._one`, the grouped finish the runner's jobs share); when a claim finds nothing it waits on the jobs'
NOTIFY channel. Jobs are submitted and read back as in `fh_pg.py`. What any runner keeping fh-saas's rows, with
their indexes, and sending fh-saas's statements would spend on PostgreSQL: its drain is the most two fh-saas workers
could reach on this machine if the runner's Python cost nothing."""
import sys, time
from systems.fh_pg import System as FhPg, TENANTS

LABEL = "fh-saas's PG statements in a bare loop, 2 processes"
BACKEND, PROCESS = 'pg', True


def noop(): return None


def consume(url, k):
    "A consumer process: claim, run, finish, a batch at a time, until SIGTERM."
    import psycopg
    from fh_saas.db_host import timestamp
    from fh_saas.pg import CHANNEL, FinishGroup, PgHost, PgJobStore, _claim_batch
    host = PgHost(url)
    stores = [PgJobStore(host.url(t), create=False) for t in TENANTS]
    group, me = FinishGroup(stores[0].conninfo), f"floor-{k}"
    listen = psycopg.connect(stores[0].conninfo, autocommit=True)
    listen.execute(f"LISTEN {CHANNEL}")
    turn, empty = 5 * k, 0  # the two processes start on different tenants, as two workers' least-served ones differ
    while True:
        items = [(stores[(turn + i) % len(stores)], 8) for i in range(4)]
        turn += 4
        got = _claim_batch(items, time.time(), 60.0, me)
        done = []
        for (st, _), rows in zip(items, got):
            for r in rows: noop()
            if rows: done.append((st, [dict(id=r['id'], attempt=r['attempt'], status='completed',
                                            now_s=timestamp(time.time()), result='null', error_log=None) for r in rows]))
        if done: group._one(done); empty = 0
        else:
            empty += 1
            if 4 * empty >= len(stores):  # every tenant looked at, nothing due: wait for an insert's NOTIFY
                for _ in listen.notifies(timeout=0.05, stop_after=1): pass


class System(FhPg):
    @staticmethod
    def consumer(url, k): return ['-m', 'systems.fh_pg_floor', url, str(k)]


if __name__ == '__main__': consume(sys.argv[1], int(sys.argv[2]))
