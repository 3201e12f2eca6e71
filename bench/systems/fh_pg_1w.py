"fh-saas on PostgreSQL, as `fh_pg.py`, with 1 worker process."
from systems.fh_pg import System as TwoWorkers

LABEL = 'fh-saas PostgreSQL, 1 worker'
BACKEND, PROCESS = 'pg', True


class System(TwoWorkers):
    workers = 1
