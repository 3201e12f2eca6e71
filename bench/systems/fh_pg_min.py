"""The latency floor on fh-saas's PostgreSQL tables: fh-saas's own submit (as `fh_pg.py`), and one consumer process
(`python -m systems.fh_pg_min URL`) with no scheduler and no runner, one job at a time in one thread. It waits on
the jobs' NOTIFY channel, claims one due job of the tenant the notification names with fh-saas's claim statement
(`PgJobStore.claim_due`), runs the no-op and records it completed with fh-saas's finish statement
(`PgJobStore.finish`); after a job it claims again until its tenant has nothing due, as `psycopg_raw.py` does. What
any runner keeping fh-saas's rows and sending fh-saas's statements spends between a submit and a job's end: its p99
is the lowest an fh-saas worker could reach in the same run."""
import sys, time
from systems.fh_pg import System as FhPg, TENANTS

LABEL = "fh-saas's PG statements, one job at a time, 1 process"
BACKEND, PROCESS = 'pg', True


def noop(): return None


def consume(url):
    "The consumer process: claim a job of each tenant a notification names, run it, record it; until SIGTERM."
    import psycopg
    from fh_saas.pg import CHANNEL, PgHost, PgJobStore
    host = PgHost(url)
    stores = {st.schema: st for st in (PgJobStore(host.url(t), create=False) for t in TENANTS)}
    listen = psycopg.connect(next(iter(stores.values())).conninfo, autocommit=True)
    listen.execute(f"LISTEN {CHANNEL}")
    due = set(stores)  # every tenant is looked at once first
    while True:
        while due:
            st = stores[due.pop()]
            for r in st.claim_due(time.time(), 60.0, 'floor', 1):
                noop()
                st.finish(r['id'], r['attempt'], 'completed', time.time(), 'null')
                due.add(st.schema)  # maybe more: claim again
        for n in listen.notifies(timeout=1.0, stop_after=1): due.add(n.payload)


class System(FhPg):
    workers = 1

    @staticmethod
    def consumer(url, k): return ['-m', 'systems.fh_pg_min', url]


if __name__ == '__main__': consume(sys.argv[1])
