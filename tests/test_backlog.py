"""A claim costs the same whatever the backlog: it reads the rows it takes, not every due job.

SQLite: the work of one claim, counted in SQLite's own VM steps, with 200 and with 20,000 due jobs waiting; once more
with an index of due jobs in `run_at` order on the file, as an older release's process makes it.
PostgreSQL: the plan of the claim, on the connection it runs on, with statistics taken before the backlog arrived (as they are until
autovacuum next analyzes the table): it reads the 32 due jobs it takes in its index's order and finds them again by
id, instead of reading (and sorting) every due or pending row.
(What a claim costs in milliseconds is bench/bench_backlog.py's business.)"""
import asyncio, json, re, time
import psycopg, pytest
from fh_saas.db_host import gen_id, timestamp
from fh_saas.store import JobStore


def fill(st, n, now):
    "Insert `n` due pending jobs in one transaction."
    ts = timestamp(now)
    with st._tx() as q:
        for _ in range(n):
            q("INSERT INTO tenant_jobs (id, job_type, status, payload, created_at, max_retries, run_at, updated_at) "
              "VALUES (:id, 'noop', 'pending', '{}', :ts, 3, :run_at, :ts)", dict(id=gen_id(), ts=ts, run_at=now - 1))


def claim_steps(tmp_path, backlog, n=32, older=False):
    "SQLite VM steps (in hundreds) that one claim of `n` jobs takes with `backlog` due jobs waiting (`older`: with the due times' old index on the file)."
    st = JobStore(f"sqlite:///{tmp_path / f'b{backlog}.db'}")
    if older:  # a process of a release before 71f60b0 makes it again when it opens the file: claims must not use it
        with st._conn() as c: c.execute("CREATE INDEX tenant_jobs_waiting ON tenant_jobs (status, run_at) WHERE status = 'pending'")
    fill(st, backlog, time.time())
    steps = [0]
    def count(): steps[0] += 1; return 0
    for conns in st._idle.values():
        for c in conns: c.set_progress_handler(count, 100)
    got = st.claim_due(time.time(), 60, 'w', n)
    assert len(got) == n and all(r['attempt'] == 1 for r in got)
    st.close()
    return steps[0]


@pytest.mark.parametrize('older', [False, True], ids=['', 'older-index'])
def test_sqlite_claim_work_does_not_grow_with_the_backlog(tmp_path, older):
    small, large = claim_steps(tmp_path, 200, older=older), claim_steps(tmp_path, 20_000, older=older)
    assert large < 3 * small, f"one claim took {small} hundred VM steps with 200 due jobs, {large} with 20,000"


def plan_nodes(node, inside_init=False):
    "Every node of an EXPLAIN (FORMAT JSON) plan, with whether it is part of the claim's subquery (an InitPlan)."
    yield node, inside_init
    for child in node.get('Plans', []):
        yield from plan_nodes(child, inside_init or child.get('Parent Relationship') == 'InitPlan')


def rows_read(plan) -> tuple[int, list]:
    "How many rows the table scans of an `EXPLAIN (ANALYZE)` plan read (kept or filtered out), and those scans."
    scans = [n for n, _ in plan_nodes(plan) if 'Scan' in n['Node Type'] and 'Relation Name' in n]
    return sum(n.get('Actual Rows', 0) + n.get('Rows Removed by Filter', 0) + n.get('Rows Removed by Index Recheck', 0)
               for n in scans), scans


def test_pg_claim_reads_only_the_rows_it_takes_whatever_the_statistics(pg_server):
    from fh_saas.pg import PgHost, PgJobStore
    db = f"backlog_{gen_id()[:8]}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    st = PgJobStore(host.create('acme'))
    with psycopg.connect(host.url('acme'), autocommit=True) as c:
        c.execute("ANALYZE tenant_jobs")   # statistics of the empty table: what the planner knows when a burst arrives
    fill(st, 5000, time.time())
    seen, real = [], st._exec
    st._exec = lambda sql, args=None, again=None, pool=None: seen.append((sql, args, pool)) or []
    st.claim_due(time.time(), 60, 'w', 32)
    st._exec = real
    (sql, args, pool), = seen
    with (pool or st.pool).connection() as c, c.transaction(force_rollback=True):   # the connection the claim gets
        plan = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + st._sql(sql), args).fetchone()['QUERY PLAN'][0]['Plan']
    read, scans = rows_read(plan)
    assert plan['Actual Rows'] == 32
    assert read <= 3 * 32, f"the claim read {read} rows to take 32 of 5,000: {json.dumps(scans)[:1500]}"


def test_pg_claims_and_finishes_are_planned_once_by_index_even_when_planned_on_an_empty_table(pg_server):
    """The hot statements are planned once per connection (a plan at every run cost a quarter of the server's CPU in a
    drain), and a plan made while the table was empty still reads only the rows the claim takes after a burst."""
    import contextlib, re
    from fh_saas.pg import PgHost, PgJobStore, pool_for
    db = f"backlog_{gen_id()[:8]}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    st = PgJobStore(host.create('acme'))
    with psycopg.connect(host.url('acme'), autocommit=True) as c: c.execute("ANALYZE tenant_jobs")
    assert st.claim_due(time.time(), 60, 'w', 32) == []  # its plan is made now, on the empty table
    fill(st, 5000, time.time())
    for _ in range(3):
        rows = st.claim_due(time.time(), 60, 'w', 32)
        assert len(rows) == 32
        for r in rows: assert st.finish(r['id'], r['attempt'], 'completed', time.time(), 'null') == 'completed'
    seen, real = [], st._exec
    st._exec = lambda sql, args=None, again=None, pool=None: seen.append((sql, args)) or []
    st.claim_due(time.time(), 60, 'w', 32)
    st._exec = real
    (sql, args), = seen
    sql = st._sql(sql)
    names = list(dict.fromkeys(re.findall(r'%\((\w+)\)s', sql)))  # psycopg numbers parameters in this order
    for k, n in enumerate(names, 1): sql = sql.replace(f'%({n})s', f'${k}')
    with contextlib.ExitStack() as stack:   # every connection of the claims' pool and of the batch connection's
        conns = [stack.enter_context(pool.connection()) for pool in (pool_for(st.conninfo, claims=True),
                 pool_for(st.conninfo, batch=True)) for _ in range(pool.get_stats()['pool_size'])]
        kept = [(c, r) for c in conns for r in c.execute(
            "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements").fetchall()]
        claims = [(c, r) for c, r in kept if 'SKIP LOCKED' in r['statement']]
        finishes = [(c, r) for c, r in kept if 'unnest' in r['statement']]
        assert claims and finishes, f"the claims and finishes are not prepared: {[r['statement'][:80] for _, r in kept]}"
        assert all(r['custom_plans'] == 0 for _, r in claims + finishes), [(r['statement'][:60], r['custom_plans'])
                                                                           for _, r in claims + finishes]
        plans = []
        for c, r in claims:  # each connection's kept plan, the one made on the empty table among them
            if r['statement'] != sql: continue
            with c.transaction(force_rollback=True):
                q = f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {r['name']}({', '.join(['%s'] * len(names))})"
                plans.append(psycopg.ClientCursor(c).execute(q, [args[n] for n in names]).fetchone()['QUERY PLAN'][0]['Plan'])
    assert plans
    for plan in plans:
        read, scans = rows_read(plan)
        assert plan['Actual Rows'] == 32
        assert read <= 3 * 32, f"the claim planned on an empty table read {read} rows to take 32: {json.dumps(scans)[:1500]}"


def prepared_here(conninfo):
    "The statements prepared on every connection this process holds to `conninfo`'s database (one entry per connection)."
    import contextlib
    from fh_saas.pg import _pools
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(p.connection()) for key, p in list(_pools.items()) if key[0] == conninfo
                 for _ in range(p.get_stats()['pool_size'])]
        return [r['statement'] for c in conns for r in c.execute("SELECT statement FROM pg_prepared_statements").fetchall()]


def test_pg_batch_statements_are_prepared_once_per_process_whatever_the_order_of_their_tenants(pg_server):
    """A claim or finish over several tenants names their schemas, so its text changes with the tenants it serves;
    planning one costs about as much as running it. Each such text is prepared once in the process (not once per
    connection, nor per order the tenants came in), even when claims and finishes run at once from several threads,
    and each tenant still gets its own rows back."""
    import random, threading
    from collections import Counter
    from fh_saas.pg import PgHost, PgJobStore
    db = f"backlog_{gen_id()[:8]}"
    pg_server.psql(f"CREATE DATABASE {db} OWNER fh")
    host = PgHost(pg_server.url.rsplit('/', 1)[0] + '/' + db)
    stores = [PgJobStore(host.create(f"t{k}")) for k in range(4)]
    for st in stores: fill(st, 160, time.time())
    errors = []
    def work(seed):
        rnd = random.Random(seed)
        try:
            for _ in range(10):
                items = [(st, 4) for st in rnd.sample(stores, 4)]  # the same four tenants, in any order
                got = stores[0].claim_batch(items, time.time(), 60, 'w')
                for (st, _), rows in zip(items, got):
                    assert len(rows) == 4 and all(st.get(r['id'])['status'] == 'running' for r in rows), "another tenant's rows"
                    for r in rows: assert st.finish(r['id'], r['attempt'], 'completed', time.time(), 'null') == 'completed'
        except Exception as e: errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    assert all(st.count(status='completed') == 160 for st in stores)
    a, b = stores[:2]   # two jobs of two tenants ending in one order, then in the other: one finish text for the pair
    for st in (a, b): fill(st, 2, time.time())
    ra, rb = [st.claim_due(time.time(), 60, 'w', 2) for st in (a, b)]
    async def end(pairs):
        return await asyncio.gather(*(st.finish_soon(r['id'], r['attempt'], 'completed', time.time(), 'null') for st, r in pairs))
    assert asyncio.run(end([(a, ra[0]), (b, rb[0])])) == ['completed'] * 2
    assert asyncio.run(end([(b, rb[1]), (a, ra[1])])) == ['completed'] * 2
    texts = Counter(s for s in prepared_here(stores[0].conninfo) if 'UNION ALL' in s or 'unnest' in s)
    claims = [s for s in texts if 'SKIP LOCKED' in s]
    assert len(claims) == 1, f"one set of tenants, {len(claims)} claim texts"
    pair = [s for s in texts if 'unnest' in s and set(re.findall(r'"(tenant_t\d)"', s)) == {a.schema, b.schema}]
    assert len(pair) == 1, f"the same two tenants' finishes as {len(pair)} texts"
    again = {s[:120]: n for s, n in texts.items() if n > 1}
    assert not again, f"prepared on several connections: {again}"
