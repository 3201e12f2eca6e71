"""Only waiting jobs are in the claim indexes, and an older table is moved to them when a store opens it.

A claim and a job's end must add nothing to the indexes that claims and the next-due look read: on PostgreSQL every
index that holds the new row version of a status change gets a new entry, so an index of every row costs two entries
a job for nothing. The test finds those indexes from the plans themselves (not by name), runs 600 jobs through
claim and finish, and reads how much the indexes grew: SQLite's own entry count (ANALYZE), PostgreSQL's pages.
An older table (the layouts before: full `(status, run_at)` and `(status, priority DESC, run_at)` indexes, a `UNIQUE`
column on `idem_key`, a partial `(status, run_at)` index for the due times) is migrated when a store opens it, on both
backends, and its idempotency keys still hold (SQLite drops the due times' own index, PostgreSQL keeps it and makes
it again where a schema lacks it). The next due time and the overdue count take in every priority: on SQLite they
are read from the claim index one priority at a time, on PostgreSQL from their own index, searched, never scanned."""
import json, re, time
import psycopg, pytest
from fh_saas.db_host import gen_id, timestamp
from fh_saas.utils_bgtsk import BackgroundTaskManager


async def noop(): return None

N = 600


def claim_and_due_sql(st):
    "The SQL (and arguments) of one claim of 32 and of the next-due look, as the store sends them."
    seen, real = [], st._exec
    st._exec = lambda sql, args=None, again=None, pool=None: seen.append((sql, args)) or [dict(p=None, r=None)]
    try:
        st.claim_due(time.time(), 60, 'w', 32)
        st.due_times()
    finally: st._exec = real
    return seen


#: the indexes `list_jobs` pages by: every row is in them, by design (the look for the earliest lease reads running
#: rows through one of them)
LISTS = {'tenant_jobs_created', 'tenant_jobs_status_created', 'tenant_jobs_type_created'}


def used_indexes(st):
    "The indexes the claim and the next-due look read, from their plans."
    out = set()
    for sql, args in claim_and_due_sql(st):
        if st.dialect == 'sqlite':
            with st._conn() as c:
                out |= {m for r in c.execute("EXPLAIN QUERY PLAN " + sql, args or {})
                        for m in re.findall(r'USING (?:COVERING )?INDEX (\w+)', r['detail'])}
        else:
            from fh_saas.pg import pool_for
            with pool_for(st.conninfo, claims=True).connection() as c, c.transaction(force_rollback=True):
                plan = json.dumps(c.execute("EXPLAIN (FORMAT JSON) " + st._sql(sql), args or {}).fetchone()['QUERY PLAN'])
            out |= set(re.findall(r'"Index Name": "(\w+)"', plan))
    return out - LISTS - {'sqlite_autoindex_tenant_jobs_1', 'tenant_jobs_pkey'}  # rows found again by id: every row is there


def size(st, ix):
    "Entries in index `ix` (SQLite, after ANALYZE) or its pages (PostgreSQL)."
    if st.dialect == 'sqlite':
        with st._conn() as c:
            c.execute("ANALYZE")
            r = c.execute("SELECT stat FROM sqlite_stat1 WHERE idx = ?", [ix]).fetchone()
            return int(r['stat'].split()[0]) if r else 0
    with st.pool.connection() as c:
        return c.execute("SELECT pg_relation_size(format('%%I.%%I', %s::text, %s::text)::regclass) / 8192 AS n",
                         [st.schema, ix]).fetchone()['n']


def test_claims_and_ends_add_nothing_to_the_claim_indexes(host):
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    st = m.store
    for _ in range(N): m.submit('index_noop', noop)
    used = used_indexes(st)
    assert used, "the claim reads an index"
    before = {ix: size(st, ix) for ix in used}
    done = 0
    while done < N:
        rows = st.claim_due(time.time(), 60, 'w', 32)
        assert rows, f"{N - done} jobs left unclaimed"
        for r in rows: assert st.finish(r['id'], r['attempt'], 'completed', time.time(), 'null') == 'completed'
        done += len(rows)
    after = {ix: size(st, ix) for ix in used}
    if st.dialect == 'sqlite':  # SQLite removes an entry at once: nothing left in them, the pending rows are gone
        assert after == {ix: 0 for ix in used}, f"entries left in the claim indexes after {N} jobs ended: {after}"
    else:  # PostgreSQL keeps dead entries until vacuum: the indexes must not have grown at all
        assert after == before, f"the claim indexes grew from {before} to {after} pages while {N} jobs ran"


OLD = """
CREATE TABLE tenant_jobs (id TEXT PRIMARY KEY, job_type TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN
  ('pending','running','completed','failed','cancelled')), payload TEXT NOT NULL, result TEXT, error_log TEXT NOT NULL
  DEFAULT '[]', retry_count INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT 3, created_at TEXT NOT
  NULL, started_at TEXT, completed_at TEXT, attempt INTEGER NOT NULL DEFAULT 0, run_at DOUBLE PRECISION NOT NULL,
  lease_until DOUBLE PRECISION, worker TEXT, func_path TEXT, timeout DOUBLE PRECISION, idem_key TEXT UNIQUE,
  cancel_requested INTEGER NOT NULL DEFAULT 0, progress DOUBLE PRECISION, progress_msg TEXT, updated_at TEXT NOT NULL,
  claim_id TEXT, priority INTEGER NOT NULL DEFAULT 0);
CREATE INDEX tenant_jobs_due ON tenant_jobs (status, run_at);
CREATE INDEX tenant_jobs_created ON tenant_jobs (created_at);
CREATE INDEX tenant_jobs_status_created ON tenant_jobs (status, created_at);
CREATE INDEX tenant_jobs_type_created ON tenant_jobs (job_type, created_at);
CREATE INDEX tenant_jobs_claim ON tenant_jobs (status, priority DESC, run_at);
CREATE INDEX tenant_jobs_waiting ON tenant_jobs (status, run_at) WHERE status = 'pending';
INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, run_at, updated_at, idem_key)
  VALUES ('0123456789abcdef0123456789abcdef', 'noop', 'completed', '{}', '2026-01-01T00:00:00', 0, '2026-01-01T00:00:00', 'k1');
"""


def old_table(host):
    "A tenant whose table has the layout of the release before, with one job keyed `k1`; its URL."
    if host.kind == 'sqlite':
        import sqlite3
        p = host.data_dir / 'old.db'; host.data_dir.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(p) as c: c.executescript(OLD)
        return f"sqlite:///{p}"
    url = host.url('old')
    from fh_saas.pg import split_url
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'SET search_path = "{schema}"')
        c.execute(OLD)
    return url


def indexes(st):
    if st.dialect == 'sqlite':
        with st._conn() as c:
            return {r['name'] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    with st.pool.connection() as c:
        return {r['indexname'] for r in c.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [st.schema])}


def test_an_older_table_is_moved_to_the_new_indexes_and_its_keys_still_hold(host):
    url = old_table(host)
    m = BackgroundTaskManager(url, run_here=False)
    have = indexes(m.store)
    assert not {'tenant_jobs_due', 'tenant_jobs_claim'} & have, f"the old claim indexes are still there: {have}"
    assert {'tenant_jobs_next', 'tenant_jobs_idem'} <= have, have
    assert ('tenant_jobs_waiting' in have) == (host.kind == 'postgresql'), f"SQLite drops the due times' index, PostgreSQL keeps it: {have}"
    if host.kind == 'postgresql': assert 'tenant_jobs_idem_key_key' not in have, "the old constraint's index is left"
    assert m.enqueue('index_noop', noop, key='k1')[0] == '0123456789abcdef0123456789abcdef'  # the old row's key
    a = m.enqueue('index_noop', noop, key='k2')[0]
    assert m.enqueue('index_noop', noop, key='k2')[0] == a
    assert len({m.submit('index_noop', noop)[0] for _ in range(3)}) == 3  # jobs with no key never collide
    pending = sorted(j.id for j in m.list_jobs(status='pending'))
    assert len(pending) == 4 and sorted(r['id'] for r in m.store.claim_due(time.time(), 60, 'w', 10)) == pending
    m2 = BackgroundTaskManager(url, run_here=False)  # opened again: nothing left to migrate, nothing changes
    assert indexes(m2.store) == indexes(m.store)


def test_the_due_time_and_the_overdue_count_take_in_every_priority(host):
    "Read from the claim index a priority at a time: a job due early at a low priority is not missed."
    m = BackgroundTaskManager(host.create('acme'), run_here=False)
    st, now = m.store, time.time()
    assert st.due_times() == (None, None) and st.overdue(now) == 0  # nothing waiting: no priority to step through
    for pri, delay in [(100, 80), (7, 500), (-100, 0), (0, 40), (-5, 0), (7, 20)]:
        m.enqueue('index_noop', noop, delay=delay, priority=pri)
    got, late = st.due_times()[0], st.overdue(time.time() + 30)
    assert now - 1 < got <= time.time() and late == 3, (got - now, late)  # -100 and -5 due now, 7 in 20 s
    assert st.overdue(time.time() + 600) == 6 and st.overdue(now - 1) == 0
    for r in st.claim_due(time.time(), 60, 'w', 10): st.finish(r['id'], r['attempt'], 'completed', time.time(), 'null')
    got = st.due_times()[0]
    assert now + 19 < got < time.time() + 21, got - now  # the priority 7 job in 20 s, not the priority 100 one in 80


def test_postgresql_reads_the_due_times_from_their_own_index(pg_server):
    "Its planner cannot search the claim index by priority: a schema without the due times' index gets it back on open."
    from fh_saas.pg import PgHost
    db = f"due_{gen_id()[:8]}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    url = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db).create('acme')
    st = BackgroundTaskManager(url, run_here=False).store
    with st.pool.connection() as c: c.execute(f"DROP INDEX {st.qschema}.tenant_jobs_waiting")  # a schema made without it
    from fh_saas.pg import PgJobStore
    st = PgJobStore(url, create=False)  # opened again (a manager would reuse the store it has)
    assert 'tenant_jobs_waiting' in indexes(st), "opening the store did not make the due times' index again"
    now = time.time()
    with st._tx() as q:
        for i in range(5000):
            q("INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, run_at, updated_at, priority) VALUES "
              "(:id, 'noop', 'pending', '{}', :ts, :at, :ts, :p)", dict(id=gen_id(), ts=timestamp(now), at=now + i - 100, p=i % 3))
    with st.pool.connection() as c, c.transaction(force_rollback=True):
        c.execute(f"ANALYZE {st.qschema}.tenant_jobs")
        plan = json.dumps(c.execute("EXPLAIN (FORMAT JSON) " + st._sql(st._due_sql)).fetchone()['QUERY PLAN'])
        assert '"Seq Scan"' not in plan and 'tenant_jobs_waiting' in plan, plan[:1500]  # one search, whatever the backlog
        c.execute("SET LOCAL enable_seqscan = off")  # the count may scan a table this small; on a large one it has an index
        plan = json.dumps(c.execute("EXPLAIN (FORMAT JSON) " + st._sql(st._overdue_sql), dict(t=now)).fetchone()['QUERY PLAN'])
        assert 'tenant_jobs_waiting' in plan, plan[:1500]
    assert st.due_times()[0] == now - 100 and st.overdue(now) == 100
