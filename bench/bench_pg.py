"""PostgreSQL benchmark: `fh-saas-worker` processes vs raw psycopg doing the same committed writes per job.

One throwaway server (`tests/pgserver.py`: fsync on, default synchronous_commit), a fresh database per measurement:
  1. drain: N no-op jobs enqueued over 10 tenants (`BackgroundTaskManager(host.create(t), run_here=False).submit`)
     BEFORE any worker starts; then 1 or 2 `python -m fh_saas.worker` processes (several --concurrency /
     --per-tenant values). jobs/s = N / (max(completed_at) - min(started_at)) from the rows themselves; the parent
     also polls a COUNT every 50 ms for the wall time from worker start (incl. Python start-up) to all completed.
  2. latency: workers running and idle; 200 jobs submitted 20 ms apart from the parent (run_here=False: the
     insert's NOTIFY wakes a worker); latency = row completed_at - parent's time.time() just before submit.
  3. raw psycopg baseline: the same tenant_jobs schema (made by PgJobStore, same indexes), the same SQL text
     (built from fh_saas's own claim/finish statements), one autocommit connection per process: claim 1 with
     `id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1))`, then UPDATE to completed, each a committed
     transaction; 1 and 2 processes; and its latency (insert+NOTIFY, claim, complete, one at a time, 20 ms apart).
     Informative extra rows: raw with fh-saas's connection discipline (pool check + BEGIN + statement + COMMIT
     = 4 round trips per write) and raw batched (claim 32 per statement, finish 32 per statement).
  4. profile: one drain and one latency run through `bench_pg.py --as-worker` (the same `fh_saas.worker.main`,
     wrapped): time per phase (rescue / claim_due / due_times / finish / thread hops / pool check / commit,
     NOTIFY wake-up), and a cProfile of all worker threads (`BENCH_CPROFILE`).
No speed assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_pg.py [--jobs 5000] [--quick]
"""
import argparse, json, os, platform, shlex, signal, subprocess, sys, tempfile, threading, time, uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / 'results'
TENANTS = [f"t{k:02d}" for k in range(10)]
RAW_TENANT = 'rawbench'


def noop(): return None  # the task of every job; workers import it as `bench_pg:noop` (PYTHONPATH has bench/)


# ---------------------------------------------------------------- small helpers
def pct(xs, q):
    "The q-th percentile (0-100) of xs, nearest-rank."
    s = sorted(xs)
    if not s: return None
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]

def ts(s): return datetime.fromisoformat(s).timestamp()
def iso(t): return datetime.fromtimestamp(t, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f+00:00')
TICK = os.sysconf('SC_CLK_TCK')

def proc_cpu(pid, split=False):
    "CPU seconds (user + system, or `(user, system)` with `split`) of process `pid`, or None."
    try: f = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError: return None
    return (int(f[11]) / TICK, int(f[12]) / TICK) if split else (int(f[11]) + int(f[12])) / TICK

def pg_cpu(pg):
    "{pid: cpu s} of the server's postmaster and all its children."
    pm = int((pg.data / 'postmaster.pid').read_text().split()[0])
    out = {pm: proc_cpu(pm)}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: f = (d / 'stat').read_text().rsplit(')', 1)[1].split()
        except OSError: continue
        if int(f[1]) == pm: out[int(d.name)] = (int(f[11]) + int(f[12])) / TICK
    return out

def pg_cpu_delta(a, b): return sum(v - a.get(p, 0.0) for p, v in b.items() if v is not None)


# ---------------------------------------------------------------- SQL shared with the raw baseline
def raw_sql(schema):
    "fh-saas's own insert / claim / finish statements for `schema` (psycopg %(name)s style)."
    from fh_saas.store import _CLAIM_SET, _RUN_COLS, _GUARD
    from fh_saas.pg import PgJobStore, CHANNEL, _notify
    q = f'"{schema}".tenant_jobs'
    conv = lambda s: PgJobStore._sql(type('S', (), dict(_sql_cache={}, qschema=f'"{schema}"'))(), s)
    cols = ('id', 'job_type', 'status', 'payload', 'created_at', 'max_retries', 'run_at', 'func_path', 'timeout',
            'idem_key', 'updated_at')
    ins = conv(_notify(f"INSERT INTO tenant_jobs ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
                       "ON CONFLICT DO NOTHING RETURNING id"))
    pick = PgJobStore.pick.format("SELECT id FROM tenant_jobs WHERE status = 'pending' AND run_at <= :now "
                                  f"ORDER BY run_at LIMIT :n{PgJobStore.skip_locked}")
    claim = conv(f"UPDATE tenant_jobs SET {_CLAIM_SET} WHERE status = 'pending' AND {pick} RETURNING {_RUN_COLS}")
    finish = conv("UPDATE tenant_jobs SET status = :status, result = :result, completed_at = :now_s, lease_until = NULL, "
                  "error_log = COALESCE(:error_log, error_log), "
                  "progress = CASE WHEN :status = 'completed' THEN 1.0 ELSE progress END, updated_at = :now_s " + _GUARD)
    # batched finish: the same SET, the same guard (id, status running, attempt), many rows in one statement
    finish_many = (f"UPDATE {q} AS j SET status = 'completed', result = 'null', completed_at = %(now_s)s, "
                   "lease_until = NULL, progress = 1.0, updated_at = %(now_s)s "
                   "FROM unnest(%(ids)s::text[], %(atts)s::int[]) AS f(id, attempt) "
                   "WHERE j.id = f.id AND j.status = 'running' AND j.attempt = f.attempt")
    return dict(insert=ins, claim=claim, finish=finish, finish_many=finish_many, cols=cols, q=q)

def new_row(now):
    from fh_saas.db_host import gen_id
    s = iso(now)
    return dict(id=gen_id(), job_type='noop', status='pending', payload='{}', created_at=s, max_retries=3, run_at=now,
                func_path='bench_pg:noop', timeout=None, idem_key=None, updated_at=s)


# ---------------------------------------------------------------- child: raw psycopg drainer
def raw_drain_child(conninfo, schema, mode, batch):
    "Drain `schema`'s pending jobs: claim, then complete, each committed; waits for 'go' on stdin."
    import psycopg, psycopg_pool
    sql = raw_sql(schema)
    worker = f"raw:{os.getpid()}"
    auto = mode != 'pooled'
    c = psycopg.connect(conninfo, autocommit=auto)
    def run(q, args):
        if not auto: psycopg_pool.ConnectionPool.check_connection(c)  # what the pool does on every getconn
        cur = c.execute(q, args)    # (non-autocommit: psycopg sends BEGIN first, then the statement)
        rows = cur.fetchall() if cur.description else cur.rowcount
        if not auto: c.commit()
        return rows
    run("SELECT 1", {})
    print('ready', flush=True); sys.stdin.readline()
    cpu0, n = time.process_time(), 0
    while True:
        now = time.time()
        rows = run(sql['claim'], dict(now=now, now_s=iso(now), lease=now + 30, worker=worker, n=batch, claim=uuid.uuid4().hex))
        if not rows: break
        if mode == 'batch':
            t = time.time()
            n += run(sql['finish_many'], dict(now_s=iso(t), ids=[r[0] for r in rows], atts=[r[4] for r in rows]))
        else:
            for r in rows:
                t = time.time()
                n += run(sql['finish'], dict(now=t, now_s=iso(t), id=r[0], attempt=r[4], status='completed',
                                             result='null', error_log=None))
    print(json.dumps(dict(done=n, cpu_s=time.process_time() - cpu0)), flush=True)
    sys.stdin.readline()  # keep the connection (and its backend's CPU count) until the parent has read the server's CPU


# ---------------------------------------------------------------- child: instrumented worker (profiling)
def as_worker(argv):
    "Run `fh_saas.worker.main` here, with per-phase timers (BENCH_PHASES=path) and/or cProfile (BENCH_CPROFILE=path)."
    ap = argparse.ArgumentParser()
    for k in ('url', 'log_level', 'imports'): ap.add_argument('--' + k.replace('_', '-'), dest=k)
    for k in ('concurrency', 'per_tenant'): ap.add_argument('--' + k.replace('_', '-'), dest=k, type=int)
    for k in ('poll', 'lease'): ap.add_argument('--' + k, dest=k, type=float)
    kw = {k: v for k, v in vars(ap.parse_args(argv)).items() if v is not None}
    phases_out, prof_out = os.environ.get('BENCH_PHASES'), os.environ.get('BENCH_CPROFILE')
    import psycopg, psycopg_pool
    import fh_saas.utils_bgtsk as ub, fh_saas.scheduler as sc, fh_saas.worker as wk, fh_saas.runner as rn
    ev = []  # (kind, wall start, duration s, extra)
    pc, tt = perf_counter, time.time

    def timed(owner, name, kind=None, extra=None):
        orig = getattr(owner, name)
        def w(*a, **k):
            t0, s = tt(), pc()
            try:
                r = orig(*a, **k); return r
            finally: ev.append((kind or name, t0, pc() - s, extra(a, locals().get('r')) if extra else None))
        setattr(owner, name, w)

    if phases_out:
        timed(ub.JobStore, 'rescue'); timed(ub.JobStore, 'due_times')
        timed(ub.JobStore, 'claim_due', extra=lambda a, r: [x['id'] for x in (r or [])])
        timed(ub.JobStore, 'finish', extra=lambda a, r: a[1])
        timed(rn.Runner, '_attempt_sync', 'run_in_thread', extra=lambda a, r: a[4]['id'])  # a sync attempt, in its thread
        orig_execute = psycopg.Connection.execute
        def execute(self, query, *a, **k):
            s = pc()
            try: return orig_execute(self, query, *a, **k)
            finally: ev.append(("pg.execute('') (the pool's check)" if query == '' else 'pg.execute (statement; BEGIN first if not autocommit)',
                                0, pc() - s, None))
        psycopg.Connection.execute = execute
        timed(psycopg.Connection, 'commit', 'pg.commit')
        orig_check = psycopg_pool.ConnectionPool.check_connection
        def check(conn):
            t0, s = tt(), pc()
            try: return orig_check(conn)
            finally: ev.append(('pool.check_connection', t0, pc() - s, None))
        psycopg_pool.ConnectionPool.check_connection = staticmethod(check)
        timed(psycopg_pool.ConnectionPool, 'getconn', 'pool.getconn (wait + check)')
        timed(psycopg_pool.ConnectionPool, 'putconn', 'pool.putconn')
        orig_run = rn.JobThreads.run
        def jrun(self, fn, *args):  # every hop to a job thread and back (the runner's `JobThreads.run`)
            box, s = {}, pc()
            def run(*a):
                box['s'] = pc()
                try: return fn(*a)
                finally: box['e'] = pc()
            fut = orig_run(self, run, *args)
            def done(f):
                e = pc()
                if 's' in box: ev.append(('thread hop: loop -> job thread', 0, box['s'] - s, None))
                if 'e' in box: ev.append(('thread hop: job thread -> loop', 0, e - box['e'], None))
            fut.add_done_callback(done)
            return fut
        rn.JobThreads.run = jrun
        orig_wake = sc.Scheduler.wake
        def wake(self, store=None):
            if threading.current_thread().name == 'fh-saas-listen': ev.append(('notify wake', tt(), 0.0, None))
            return orig_wake(self, store)
        sc.Scheduler.wake = wake
        orig_dispatch = sc.Scheduler._dispatch
        async def dispatch(self, tg):
            t0, s = tt(), pc()
            try: return await orig_dispatch(self, tg)
            finally: ev.append(('scheduler._dispatch (event loop, incl. awaits)', t0, pc() - s, None))
        sc.Scheduler._dispatch = dispatch

    profs = []
    if prof_out:
        import cProfile
        # timer = the calling thread's CPU time: blocked waits (locks, queues, sockets) cost ~nothing, so the
        # table shows where the worker burns CPU, not where its threads sleep
        def boot(*a):
            p = cProfile.Profile(time.thread_time); profs.append(p); p.enable()
        threading.setprofile(boot)
        mp = cProfile.Profile(time.thread_time); profs.append(mp); mp.enable()
    cpu0, w0 = time.process_time(), pc()
    wk.main(**kw)
    cpu, wall = time.process_time() - cpu0, pc() - w0
    if prof_out:
        import pstats, io
        threading.setprofile(None); mp.disable()
        # Other threads' profilers are still enabled (idle job threads block in queue.get): read only their
        # completed calls (`snapshot_stats`), never `disable()` them from here, which would close their open
        # frames with this thread's CPU clock.
        class Done:
            def __init__(self, p): self.p = p
            def create_stats(self): self.p.snapshot_stats(); self.stats = self.p.stats
        st = None
        for p in profs:
            try:
                x = Done(p)
                if st is None: st = pstats.Stats(x)
                else: st.add(x)
            except Exception as e: print('profile merge:', e, file=sys.stderr)
        st.dump_stats(prof_out)
    if phases_out:
        Path(phases_out).write_text(json.dumps(dict(events=ev, cpu_s=cpu, wall_s=wall)))


# ---------------------------------------------------------------- parent: databases, workers
class Bench:
    def __init__(self, pg, work):
        self.pg, self.work, self.k = pg, Path(work), 0
        import bench_pg as mod  # so the stored func_path is `bench_pg:noop`, importable by the workers
        self.noop = mod.noop
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), str(ROOT),
                                                                            os.environ.get('PYTHONPATH')])))
        self.wlog = open(self.work / 'workers.log', 'ab')

    def new_db(self, tag):
        self.k += 1
        name = f"b{self.k:02d}_{tag}"
        self.pg.psql(f"CREATE DATABASE {name} OWNER fh")
        from fh_saas.pg import PgHost
        return PgHost(self.pg.url.rsplit('/', 1)[0] + '/' + name)

    def release(self, host):
        "Close this process's pool for `host` and forget its stores (its backends exit, flushing their stats)."
        import fh_saas.pg as fp, fh_saas.store as fs
        p = fp._pools.pop(host.conninfo, None)
        if p is not None: p.close()
        for u in [u for u in fs._stores if u.startswith(host.conninfo)]: fs._stores.pop(u)

    def managers(self, host):
        from fh_saas.utils_bgtsk import BackgroundTaskManager
        return [BackgroundTaskManager(host.create(t), run_here=False) for t in TENANTS]

    def enqueue(self, host, n, threads=4):
        mgrs = self.managers(host)
        def part(k):
            for i in range(k, n, threads): mgrs[i % len(mgrs)].submit('noop', self.noop)
        t = perf_counter()
        with ThreadPoolExecutor(threads) as ex: list(ex.map(part, range(threads)))
        return n / (perf_counter() - t)

    def start_workers(self, host, k, conc=8, per_tenant=2, env=None, wrapped=False):
        cmd = ([sys.executable, str(HERE / 'bench_pg.py'), '--as-worker'] if wrapped
               else [sys.executable, '-m', 'fh_saas.worker'])
        args = ['--url', host.conninfo, '--concurrency', str(conc), '--per-tenant', str(per_tenant),
                '--poll', '5', '--lease', '30', '--log-level', 'WARNING', '--imports', 'bench_pg']
        # --imports: without it the first jobs, run at once in several job threads, can fail with "partially
        # initialized module 'bench_pg'" (fh_saas.utils_bgtsk.resolve takes sys.modules[mod] before its import ends)
        envs = env if isinstance(env, list) else [env] * k
        return [subprocess.Popen(cmd + args, env=dict(self.env, **(envs[i] or {})), cwd=ROOT,
                                 stdout=self.wlog, stderr=self.wlog) for i in range(k)]

    def stop(self, procs):
        for p in procs:
            if p.poll() is None: p.send_signal(signal.SIGTERM)
        return [p.wait(60) for p in procs]

    def union(self, cols, where='', schemas=None):
        from fh_saas.pg import tenant_schema
        return ' UNION ALL '.join(f'SELECT {cols} FROM "{tenant_schema(t)}".tenant_jobs{where}' for t in (schemas or TENANTS))

    def rows(self, mon, schemas=None):
        return mon.execute(self.union('id, status, attempt, started_at, completed_at', schemas=schemas)).fetchall()

    def stats(self, mon):
        w = mon.execute("SELECT wal_sync, wal_write, wal_records FROM pg_stat_wal").fetchone()
        x = mon.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return dict(wal_sync=w[0], wal_write=w[1], wal_records=w[2], xact_commit=x[0])

    # ------------------------------------------------------------ fh-saas drain
    def drain_fh(self, n, workers, conc, per_tenant, env=None, wrapped=False, label=None):
        import psycopg
        host = self.new_db(f"drain{workers}w_c{conc}p{per_tenant}")
        enq = self.enqueue(host, n)
        self.release(host)
        mon = psycopg.connect(host.conninfo, autocommit=True)
        count_sql = f"SELECT sum(c)::int FROM ({self.union('count(*) AS c', where=' WHERE status = %s')}) s"
        s0, cpu0 = self.stats(mon), pg_cpu(self.pg)
        t0 = time.time()
        procs = self.start_workers(host, workers, conc, per_tenant, env, wrapped)
        done_t, limit = None, t0 + max(60, n / 40)
        while time.time() < limit:
            if mon.execute(count_sql, ['completed'] * len(TENANTS)).fetchone()[0] >= n: done_t = time.time(); break
            if any(p.poll() is not None for p in procs): break
            time.sleep(0.05)
        wcpu = [proc_cpu(p.pid, split=True) for p in procs]
        pgc = pg_cpu_delta(cpu0, pg_cpu(self.pg))
        codes = self.stop(procs)
        time.sleep(0.3)
        s1 = self.stats(mon)
        rows = self.rows(mon)
        mon.close()
        st = [ts(r[3]) for r in rows if r[3]]; ct = [ts(r[4]) for r in rows if r[4]]
        ok = sum(1 for r in rows if r[1] == 'completed' and r[2] == 1)
        drain = max(ct) - min(st) if ct else None
        d = {k: s1[k] - s0[k] for k in s0}
        return dict(impl='fh-saas', label=label or f"{workers} worker{'s' * (workers > 1)}", workers=workers,
                    concurrency=conc, per_tenant=per_tenant, env=env, n=n, completed_once=ok,
                    completed=sum(1 for r in rows if r[1] == 'completed'), exit_codes=codes,
                    drain_s=drain, jobs_s=n / drain if drain and len(ct) == n else None,
                    wall_s=(done_t - t0) if done_t else None, wall_jobs_s=n / (done_t - t0) if done_t else None,
                    startup_s=(min(st) - t0) if st else None, enqueue_jobs_s=enq,
                    worker_cpu_ms_job=1e3 * sum(sum(c) for c in wcpu if c) / n,
                    worker_sys_ms_job=1e3 * sum(c[1] for c in wcpu if c) / n, pg_cpu_ms_job=1e3 * pgc / n,
                    wal_syncs_job=d['wal_sync'] / n, xacts_job=d['xact_commit'] / n)

    # ------------------------------------------------------------ fh-saas latency
    def latency_fh(self, k, gap, workers, env=None, wrapped=False, warm=20):
        import psycopg
        host = self.new_db(f"lat{workers}w")
        mgrs = self.managers(host)
        mon = psycopg.connect(host.conninfo, autocommit=True)
        count_sql = f"SELECT sum(c)::int FROM ({self.union('count(*) AS c', where=' WHERE status = %s')}) s"
        def wait_done(total, limit=60):
            end = time.time() + limit
            while time.time() < end:
                if mon.execute(count_sql, ['completed'] * len(TENANTS)).fetchone()[0] >= total: return True
                time.sleep(0.02)
            return False
        procs = self.start_workers(host, workers, 8, 2, env, wrapped)
        for i in range(warm): mgrs[i % len(mgrs)].submit('noop', self.noop)
        wait_done(warm); time.sleep(0.5)
        subs, nxt = [], perf_counter()
        for i in range(k):
            t = time.time(); jid = mgrs[i % len(mgrs)].submit('noop', self.noop)[0]; te = time.time()
            subs.append((jid, t, te))
            nxt += gap; time.sleep(max(0.0, nxt - perf_counter()))
        ok = wait_done(warm + k)
        self.stop(procs)
        rows = {r[0]: r for r in self.rows(mon)}
        mon.close(); self.release(host)
        lat, wake, run, sub = [], [], [], []
        for jid, t, te in subs:
            r = rows[jid]
            if r[1] != 'completed': continue
            lat.append(1e3 * (ts(r[4]) - t)); wake.append(1e3 * (ts(r[3]) - t)); run.append(1e3 * (ts(r[4]) - ts(r[3])))
            sub.append(1e3 * (te - t))
        return dict(impl='fh-saas', workers=workers, jobs=k, gap_ms=gap * 1e3, completed=len(lat), all_done=ok,
                    **summ('lat', lat), **summ('to_started', wake), **summ('started_to_completed', run),
                    **summ('submit_call', sub), subs=subs)

    # ------------------------------------------------------------ raw psycopg
    def raw_db(self, n):
        import psycopg
        from fh_saas.pg import PgJobStore, tenant_schema
        host = self.new_db('raw')
        PgJobStore(host.url(RAW_TENANT))  # the same table and indexes as fh-saas
        self.release(host)
        schema = tenant_schema(RAW_TENANT); sql = raw_sql(schema)
        with psycopg.connect(host.conninfo) as c:  # not timed: one transaction
            now = time.time()
            c.cursor().executemany(sql['insert'], [dict(new_row(now), schema=schema) for _ in range(n)])
        return host, schema

    def drain_raw(self, n, procs_n, mode='autocommit', batch=1, label=None):
        import psycopg
        host, schema = self.raw_db(n)
        mon = psycopg.connect(host.conninfo, autocommit=True)
        s0, cpu0 = self.stats(mon), pg_cpu(self.pg)
        ps = [subprocess.Popen([sys.executable, str(HERE / 'bench_pg.py'), '--raw-drain', host.conninfo, schema, mode,
                                str(batch)], env=self.env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True) for _ in range(procs_n)]
        for p in ps: assert p.stdout.readline().strip() == 'ready'
        t0 = time.time()
        for p in ps: p.stdin.write('go\n'); p.stdin.flush()
        outs = [json.loads(p.stdout.readline()) for p in ps]
        t1 = time.time()
        pgc = pg_cpu_delta(cpu0, pg_cpu(self.pg))
        for p in ps: p.stdin.write('bye\n'); p.stdin.flush()
        for p in ps: p.wait(30)
        time.sleep(0.3)
        s1 = self.stats(mon)
        rows = self.rows(mon, [RAW_TENANT])
        mon.close()
        st = [ts(r[3]) for r in rows if r[3]]; ct = [ts(r[4]) for r in rows if r[4]]
        ok = sum(1 for r in rows if r[1] == 'completed' and r[2] == 1)
        drain = max(ct) - min(st)
        d = {k: s1[k] - s0[k] for k in s0}
        return dict(impl='raw psycopg', label=label or f"{procs_n} process{'es' * (procs_n > 1)}", workers=procs_n,
                    mode=mode, batch=batch, n=n, completed_once=ok, drain_s=drain,
                    jobs_s=n / drain if ok == n else None, wall_s=t1 - t0, wall_jobs_s=n / (t1 - t0),
                    worker_cpu_ms_job=1e3 * sum(o['cpu_s'] for o in outs) / n, pg_cpu_ms_job=1e3 * pgc / n,
                    wal_syncs_job=d['wal_sync'] / n, xacts_job=d['xact_commit'] / n)

    def latency_raw(self, k, gap, warm=20):
        import psycopg
        host, schema = self.raw_db(0)
        sql = raw_sql(schema)
        c = psycopg.connect(host.conninfo, autocommit=True)
        lat, lat_commit, to_started, sub = [], [], [], []
        nxt = perf_counter()
        for i in range(warm + k):
            t = time.time()
            c.execute(sql['insert'], dict(new_row(t), schema=schema)).fetchall()
            te = time.time()
            now = time.time()
            r = c.execute(sql['claim'], dict(now=now, now_s=iso(now), lease=now + 30, worker='raw', n=1, claim=uuid.uuid4().hex)).fetchall()[0]
            tc = time.time()
            assert c.execute(sql['finish'], dict(now=tc, now_s=iso(tc), id=r[0], attempt=r[4], status='completed',
                                                 result='null', error_log=None)).rowcount == 1
            tf = time.time()
            if i >= warm:
                lat.append(1e3 * (tc - t)); lat_commit.append(1e3 * (tf - t)); to_started.append(1e3 * (now - t))
                sub.append(1e3 * (te - t))
            nxt += gap; time.sleep(max(0.0, nxt - perf_counter()))
        c.close()
        return dict(impl='raw psycopg', workers=1, jobs=k, gap_ms=gap * 1e3, completed=len(lat),
                    **summ('lat', lat), **summ('lat_incl_finish_commit', lat_commit), **summ('to_started', to_started),
                    **summ('submit_call', sub))


def summ(name, xs):
    return {f"{name}_p50": pct(xs, 50), f"{name}_p90": pct(xs, 90), f"{name}_p99": pct(xs, 99),
            f"{name}_max": max(xs) if xs else None}


# ---------------------------------------------------------------- profile analysis
def phase_table(ph, n_jobs):
    "Per phase: calls, calls/job, mean/p50/p99 ms, total ms per job."
    by = {}
    for kind, _, d, _ in ph['events']: by.setdefault(kind, []).append(d * 1e3)
    out = []
    for kind, xs in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        if kind == 'notify wake': continue
        out.append(dict(phase=kind, calls=len(xs), per_job=len(xs) / n_jobs, mean_ms=sum(xs) / len(xs),
                        p50_ms=pct(xs, 50), p99_ms=pct(xs, 99), ms_per_job=sum(xs) / n_jobs))
    return out

def latency_breakdown(ph, subs):
    "Per job of the latency run: submit -> NOTIFY wake -> claim start -> claim end -> run start -> finish start -> finish end."
    wakes = sorted(t for k, t, _, _ in ph['events'] if k == 'notify wake')
    claim = {}
    for k, t, d, ids in ph['events']:
        if k == 'claim_due':
            for i in ids or []: claim[i] = (t, t + d)
    run = {x: t for k, t, d, x in ph['events'] if k == 'run_in_thread'}
    fin = {x: (t, t + d) for k, t, d, x in ph['events'] if k == 'finish'}
    import bisect
    cols = {k: [] for k in ('submit->wake', 'wake->claim start', 'claim (UPDATE+commit)', 'claimed->run start',
                            'run start->finish start', 'finish (UPDATE+commit)', 'submit->finish committed',
                            'submit->completed_at')}
    cols['submit returned->wake'] = []
    for jid, t, te in subs:
        if jid not in claim or jid not in fin or jid not in run: continue
        i = bisect.bisect_left(wakes, t)
        w = wakes[i] if i < len(wakes) and wakes[i] < claim[jid][0] else None
        if w is not None:
            cols['submit->wake'].append(w - t); cols['wake->claim start'].append(claim[jid][0] - w)
            cols['submit returned->wake'].append(w - te)
        cols['claim (UPDATE+commit)'].append(claim[jid][1] - claim[jid][0])
        cols['claimed->run start'].append(run[jid] - claim[jid][1])
        cols['run start->finish start'].append(fin[jid][0] - run[jid])
        cols['finish (UPDATE+commit)'].append(fin[jid][1] - fin[jid][0])
        cols['submit->finish committed'].append(fin[jid][1] - t)
        cols['submit->completed_at'].append(fin[jid][0] - t)
    return [dict(step=k, n=len(v), p50_ms=pct([x * 1e3 for x in v], 50), p99_ms=pct([x * 1e3 for x in v], 99))
            for k, v in cols.items()]

def cprofile_top(path, n=20):
    "Top functions by own CPU time, and fh_saas / psycopg_pool functions by cumulative CPU time."
    import pstats, io
    st = pstats.Stats(str(path), stream=io.StringIO())
    tot = sum(v[2] for v in st.stats.values())
    row = lambda f, l, fn, nc, tt, ct: dict(func=f"{Path(f).name}:{l}({fn})" if l else fn, calls=nc, tottime_s=tt,
                                            cumtime_s=ct, share=tt / tot if tot else None, cum_share=ct / tot if tot else None)
    top = [row(f, l, fn, nc, tt, ct) for (f, l, fn), (cc, nc, tt, ct, _) in
           sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:n]]
    ours = [row(f, l, fn, nc, tt, ct) for (f, l, fn), (cc, nc, tt, ct, _) in
            sorted(st.stats.items(), key=lambda kv: -kv[1][3]) if '/fh_saas/' in f or '/psycopg_pool/' in f][:n]
    return top, ours, tot


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs: return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2

def claim_rounds(ph):
    "The scheduler's claim loop: one round = rescue + claim_due, each behind a thread hop there and back."
    ev = ph['events']
    mean = lambda k: (lambda xs: 1e3 * sum(xs) / len(xs) if xs else 0.0)([d for kk, _, d, _ in ev if kk == k])
    claims = [x for k, _, _, x in ev if k == 'claim_due']
    hop = mean('thread hop: loop -> job thread') + mean('thread hop: job thread -> loop')
    r = dict(claims=len(claims), jobs_per_claim=sum(len(x or []) for x in claims) / max(1, len(claims)),
             rescue_ms=mean('rescue'), claim_ms=mean('claim_due'), hop_ms=hop,
             dispatch_calls=sum(1 for k, *_ in ev if k.startswith('scheduler._dispatch')),
             check_ms=mean('pool.check_connection'), commit_ms=mean('pg.commit'), finish_ms=mean('finish'))
    r['round_ms'] = r['rescue_ms'] + r['claim_ms'] + 2 * hop
    r['ceiling_jobs_s'] = 1e3 * r['jobs_per_claim'] / r['round_ms'] if r['round_ms'] else None
    r['ceiling_no_rescue_jobs_s'] = 1e3 * r['jobs_per_claim'] / (r['claim_ms'] + hop) if r['claim_ms'] else None
    return r

def drain_key(d):
    return (d['impl'], d.get('mode'), d.get('batch'), d['workers'], d.get('concurrency'), d.get('per_tenant'),
            json.dumps(d.get('env'), sort_keys=True))

def aggregate(drains):
    "One row per configuration: the median jobs/s over its runs (and every run), other columns averaged."
    groups = {}
    for d in drains: groups.setdefault(drain_key(d), []).append(d)
    out = []
    for k, ds in groups.items():
        r = dict(ds[0])
        r['runs'] = [d['jobs_s'] for d in ds]
        for f in ('jobs_s', 'wall_jobs_s'): r[f] = median([d[f] for d in ds])
        for f in ('startup_s', 'worker_cpu_ms_job', 'worker_sys_ms_job', 'pg_cpu_ms_job', 'wal_syncs_job', 'xacts_job'):
            vs = [d[f] for d in ds if d.get(f) is not None]
            r[f] = sum(vs) / len(vs) if vs else None
        r['completed_once'] = sum(d['completed_once'] for d in ds); r['n'] = sum(d['n'] for d in ds)
        out.append(r)
    return out

def find(rows, impl, workers, mode='autocommit', conc=None, pt=None):
    for r in rows:
        if r['impl'] == impl and r['workers'] == workers and r.get('env') in (None, {}) and \
           (impl != 'raw psycopg' or r.get('mode') == mode) and \
           (conc is None or (r.get('concurrency'), r.get('per_tenant')) == (conc, pt)): return r
    return None


# ---------------------------------------------------------------- report
def fmt(v, spec=',.0f'):
    return '-' if v is None else format(v, spec)

def findings(res, rows):
    "Where we stand against the aims, and what the profile says, with this run's numbers."
    F, p, per_write = [], res.get('profile') or {}, None
    bc, bp = res['best_1_worker']['concurrency'], res['best_1_worker']['per_tenant']
    raw1, raw2 = find(rows, 'raw psycopg', 1), find(rows, 'raw psycopg', 2)
    rawp, rawb = find(rows, 'raw psycopg', 1, 'pooled'), find(rows, 'raw psycopg', 1, 'batch')
    fd1, fb1 = find(rows, 'fh-saas', 1, conc=8, pt=2), find(rows, 'fh-saas', 1, conc=bc, pt=bp)
    fd2, fb2 = find(rows, 'fh-saas', 2, conc=8, pt=2), find(rows, 'fh-saas', 2, conc=bc, pt=bp)
    lat = {(d['impl'], d['workers']): d for d in res['latency']}
    pc = lambda a, b: f"{100 * a / b:.0f} %" if a and b else '-'
    F.append(f"- **Aim 1, one worker >= raw psycopg**: with `--concurrency 8 --per-tenant 2` "
             f"{fmt(fd1['jobs_s'])} jobs/s = {pc(fd1['jobs_s'], raw1['jobs_s'])} of raw psycopg with one connection "
             f"({fmt(raw1['jobs_s'])}); best tried (`--concurrency {bc} --per-tenant {bp}`) {fmt(fb1['jobs_s'])} = "
             f"{pc(fb1['jobs_s'], raw1['jobs_s'])}, helped by group commit ({fb1['wal_syncs_job']:.2f} WAL fsyncs/job "
             f"vs {raw1['wal_syncs_job']:.2f}). Two workers: {fmt(fd2['jobs_s'])} (default) / {fmt(fb2['jobs_s'])} (best) "
             f"vs raw with two processes {fmt(raw2['jobs_s'])}.")
    F.append(f"- **Aim 2, several times raw with batching**: a claim takes up to `--per-tenant` jobs of a tenant in one "
             f"statement, and attempts that end together are recorded in one statement. For scale: raw psycopg claiming 32 "
             f"and completing 32 per statement drains {fmt(rawb['jobs_s'])} jobs/s "
             f"({pc(rawb['jobs_s'], raw1['jobs_s'])} of raw one-at-a-time), {rawb['wal_syncs_job']:.2f} WAL fsyncs/job.")
    l1, lr = lat.get(('fh-saas', 1)), lat.get(('raw psycopg', 1))
    if l1 and lr:
        F.append(f"- **Aim 3, p50 < 5 ms**: 1 idle worker p50 {l1['lat_p50']:.2f} ms, p99 {l1['lat_p99']:.2f} ms "
                 f"(2 workers {lat[('fh-saas', 2)]['lat_p50']:.2f} / {lat[('fh-saas', 2)]['lat_p99']:.2f}); raw psycopg "
                 f"doing insert, claim, complete in one process {lr['lat_p50']:.2f} / {lr['lat_p99']:.2f} ms. The "
                 f"submit call alone (web side, `PgJobStore.insert`) takes {l1['submit_call_p50']:.2f} ms p50 vs "
                 f"{lr['submit_call_p50']:.2f} ms for the same INSERT+NOTIFY over a plain autocommit connection.")
    F.append(f"- **CPU**: the worker burns {fd1['worker_cpu_ms_job']:.2f} ms CPU/job at default settings "
             f"({fd1['worker_sys_ms_job']:.2f} in the kernel) and {fb1['worker_cpu_ms_job']:.2f} at the best, vs "
             f"{raw1['worker_cpu_ms_job']:.2f} for raw psycopg; PostgreSQL adds {fd1['pg_cpu_ms_job']:.2f} ms/job "
             f"(raw {raw1['pg_cpu_ms_job']:.2f}). On 2 cores shared with the server that alone caps a worker near "
             f"{fmt(2000 / (fb1['worker_cpu_ms_job'] + fb1['pg_cpu_ms_job']))} jobs/s for worker + server together "
             f"(best 1 worker reached {fmt(fb1['jobs_s'])}; 2 workers {fmt(fb2['jobs_s'])}).")
    return F, None  # the numbers above; the profile tables speak for themselves

def write_report(res, out_md, out_json):
    e, lats = res['env'], res['latency']
    rows = aggregate(res['drains'])
    raw1, raw2 = find(rows, 'raw psycopg', 1), find(rows, 'raw psycopg', 2)
    rounds = max(d.get('round', 1) for d in res['drains'])
    L = [f"# fh-saas PostgreSQL benchmark", "",
         f"Produced by `{res['command']}` on {res['date']} ({res['elapsed_s']:.0f} s).", "",
         f"Machine: Python {e['python']}, {e['postgres']}, {e['cores']} cores ({e['usable_cores']} usable), "
         f"{e['platform']}; psycopg {e['psycopg']}, psycopg_pool {e['psycopg_pool']}, fh-saas {e['fh_saas']}. "
         f"Server: {e['server_settings']}; data dir on {e['data_fs']}. Load average (1/5/15 min) at start "
         f"{'/'.join(f'{x:.1f}' for x in e['loadavg_at_start'])}, at end {'/'.join(f'{x:.1f}' for x in e['loadavg_at_end'])}: "
         "other processes shared the 2 cores, so single runs vary by +-30 %.", "",
         f"- **drain**: {res['params']['jobs']:,} no-op sync jobs (`bench_pg:noop`) enqueued over 10 tenants with "
         "`BackgroundTaskManager(host.create(t), run_here=False).submit(...)` before any worker starts "
         "(`python -m fh_saas.worker --url URL --concurrency C --per-tenant P --poll 5 --lease 30 --imports bench_pg`), "
         "a fresh database per run. **jobs/s** = N / (max(completed_at) - min(started_at)) of the rows"
         f"{f', median of {rounds} interleaved rounds where a row has several runs (all runs listed)' if rounds > 1 else ''}; "
         "**wall** = N / (worker Popen -> the parent's 50 ms COUNT poll sees all completed), so it includes Python start-up. "
         "CPU ms/job: worker processes (user+sys, sys in brackets) and all PostgreSQL backends; WAL fsyncs and committed "
         "transactions per job from `pg_stat_wal` / `pg_stat_database`. *once*: jobs completed at attempt 1.",
         "- **raw psycopg**: the same table (made by `PgJobStore`), the same SQL text as fh-saas (claim 1 with "
         "`id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED))`, then the `finish` UPDATE), one autocommit connection "
         "per process, each statement one committed transaction. *4 RT per write* = the same with the connection "
         "discipline fh-saas had before its pool went autocommit (empty-query check + BEGIN + statement + COMMIT), "
         "for comparison; *batched 32* = claim 32 per statement, "
         "complete 32 per statement (`UPDATE ... FROM unnest(ids, attempts)`, same guard).", ""]
    L += ["## Drain (jobs/s)", "",
          "| implementation | workers | --concurrency | --per-tenant | jobs/s | runs | % of raw (same procs) | wall jobs/s | "
          "start-up s | worker CPU ms/job (sys) | PG CPU ms/job | WAL fsyncs/job | xacts/job | once |",
          "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in rows:
        raw = raw1 if d['workers'] == 1 else raw2
        name = d['impl'] if d['impl'] == 'fh-saas' else f"raw psycopg{'' if d['mode'] == 'autocommit' else ', ' + ('4 RT per write' if d['mode'] == 'pooled' else 'batched 32')}"
        if d.get('env'): name += ' ' + ' '.join(f"{k}={v}" for k, v in d['env'].items())
        sys_ = f" ({fmt(d['worker_sys_ms_job'], '.2f')})" if d.get('worker_sys_ms_job') is not None else ''
        L.append(f"| {name} | {d['workers']} | {d.get('concurrency', '-')} | {d.get('per_tenant', '-')} | "
                 f"{fmt(d['jobs_s'])} | {', '.join(fmt(x) for x in d['runs'])} | "
                 f"{fmt(100 * d['jobs_s'] / raw['jobs_s'] if d['jobs_s'] and raw and raw['jobs_s'] else None, '.0f')} % | "
                 f"{fmt(d['wall_jobs_s'])} | {fmt(d.get('startup_s'), '.2f')} | {fmt(d['worker_cpu_ms_job'], '.2f')}{sys_} | "
                 f"{fmt(d['pg_cpu_ms_job'], '.2f')} | {fmt(d['wal_syncs_job'], '.2f')} | {fmt(d['xacts_job'], '.1f')} | "
                 f"{d['completed_once']}/{d['n']} |")
    L += ["", "## Latency (submit -> completed, ms)", "",
          f"Workers running and idle (`--concurrency 8 --per-tenant 2`), {res['params']['lat_jobs']} jobs "
          f"{res['params']['gap_ms']:.0f} ms apart after 20 warm-up jobs, round-robin over the 10 tenants; latency = row "
          "`completed_at` - the parent's `time.time()` just before `submit` (same clock). `completed_at` is stamped just "
          "before the finishing UPDATE is sent, so it excludes that last commit (raw: *incl. commit* column; fh-saas: see "
          "the profile below). *to started* = `started_at` - submit time (insert + NOTIFY + wake-up + dispatch).", "",
          "| implementation | workers | p50 | p90 | p99 | max | incl. finish commit p50 / p99 | to started p50 | "
          "started -> completed p50 | submit call p50 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d in lats:
        inc = (f"{fmt(d.get('lat_incl_finish_commit_p50'), '.2f')} / {fmt(d.get('lat_incl_finish_commit_p99'), '.2f')}"
               if 'lat_incl_finish_commit_p50' in d else '-')
        L.append(f"| {d['impl']} | {d['workers']} | {fmt(d['lat_p50'], '.2f')} | {fmt(d['lat_p90'], '.2f')} | "
                 f"{fmt(d['lat_p99'], '.2f')} | {fmt(d['lat_max'], '.2f')} | {inc} | {fmt(d['to_started_p50'], '.2f')} | "
                 f"{fmt(d.get('started_to_completed_p50'), '.2f')} | {fmt(d['submit_call_p50'], '.2f')} |")
    p = res.get('profile') or {}
    for key in ('drain', 'drain_best'):
        if not p.get(key): continue
        pd = p[key]; r = pd['rounds']
        L += ["", f"## Profile: where one worker's time goes (drain, {pd['run']['n']:,} jobs, "
              f"--concurrency {pd['run']['concurrency']} --per-tenant {pd['run']['per_tenant']})", "",
              f"Instrumented worker (`bench_pg.py --as-worker`: the same `fh_saas.worker.main`, with timers around "
              f"fh_saas / psycopg / pool calls): {fmt(pd['run']['jobs_s'])} jobs/s (uninstrumented: "
              f"{fmt(pd.get('plain_jobs_s'))}); worker CPU {pd['cpu_s']:.2f} s over {pd['wall_s']:.2f} s wall incl. "
              f"start-up ({100 * pd['cpu_s'] / pd['wall_s']:.0f} % of one core). Durations are wall time in the calling "
              "thread; several job threads run at once, so per-job sums exceed 1/(jobs/s). "
              f"Claim loop: `_dispatch` called {r['dispatch_calls']} time(s); {r['claims']:,} claims of "
              f"{r['jobs_per_claim']:.2f} jobs; one round (rescue + claim_due + 2 hop pairs) {r['round_ms']:.2f} ms -> "
              f"ceiling {fmt(r['ceiling_jobs_s'])} jobs/s ({fmt(r['ceiling_no_rescue_jobs_s'])} without the rescue).", "",
              "| phase | calls | calls/job | mean ms | p50 ms | p99 ms | ms/job |", "|---|---:|---:|---:|---:|---:|---:|"]
        for x in pd['phases']:
            L.append(f"| {x['phase']} | {x['calls']:,} | {x['per_job']:.2f} | {x['mean_ms']:.3f} | {x['p50_ms']:.3f} | "
                     f"{x['p99_ms']:.3f} | {x['ms_per_job']:.3f} |")
    if p.get('latency'):
        L += ["", "## Profile: one job's path at low load (1 instrumented worker, latency run)", "",
              f"Same jobs as the latency table (instrumented run: p50 {fmt(p['latency']['run']['lat_p50'], '.2f')} ms). "
              "Wall-clock instants: the parent's submit, the listener thread's `Scheduler.wake`, start/end of "
              "`claim_due` / `run_in_thread` / `finish` for that job's id.", "",
              "| step | n | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
        for x in p['latency']['breakdown']:
            L.append(f"| {x['step']} | {x['n']} | {fmt(x['p50_ms'], '.3f')} | {fmt(x['p99_ms'], '.3f')} |")
        L += ["", "| phase | calls | calls/job | mean ms | p50 ms | p99 ms |", "|---|---:|---:|---:|---:|---:|"]
        for x in p['latency']['phases']:
            L.append(f"| {x['phase']} | {x['calls']:,} | {x['per_job']:.2f} | {x['mean_ms']:.3f} | {x['p50_ms']:.3f} | "
                     f"{x['p99_ms']:.3f} |")
    if p.get('cprofile'):
        cp = p['cprofile']; r0 = cp['run']
        L += ["", f"## cProfile of CPU time, all worker threads (drain, {cp['n']:,} jobs, --concurrency "
              f"{r0['concurrency']} --per-tenant {r0['per_tenant']})", "",
              f"`cProfile.Profile(time.thread_time)` in every thread of one worker (`BENCH_CPROFILE`), so blocked waits "
              f"cost nothing: {cp['total_s']:.2f} s of thread CPU = {1e3 * cp['total_s'] / cp['n']:.2f} ms/job under the "
              f"profiler (the process: {r0['worker_cpu_ms_job']:.2f} ms/job, {r0['worker_sys_ms_job']:.2f} of it in the "
              "kernel; without the profiler see the drain table). Shares matter, not the absolute times. Own CPU:", "",
              "| function | calls | own CPU s | share |", "|---|---:|---:|---:|"]
        for x in cp['top']:
            L.append(f"| `{x['func']}` | {x['calls']:,} | {x['tottime_s']:.3f} | {100 * (x['share'] or 0):.1f} % |")
        L += ["", "fh_saas and psycopg_pool functions by cumulative CPU (including what they call):", "",
              "| function | calls | cumulative CPU s | share | per call ms |", "|---|---:|---:|---:|---:|"]
        for x in cp['ours']:
            L.append(f"| `{x['func']}` | {x['calls']:,} | {x['cumtime_s']:.3f} | {100 * (x['cum_share'] or 0):.1f} % | "
                     f"{1e3 * x['cumtime_s'] / max(1, x['calls']):.3f} |")
    try: F, _ = findings(res, rows)
    except Exception as ex: F = [f"- (findings not computed: {type(ex).__name__}: {ex})"]
    res['findings'] = F
    L += ["", "## Findings (this run's numbers)", ""] + F
    out_md.write_text('\n'.join(L) + '\n')
    out_json.write_text(json.dumps(dict(res, drain_table=rows), indent=2, default=str) + '\n')


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=None, help='jobs per drain (default 5000; 1000 with --quick)')
    ap.add_argument('--quick', action='store_true', help='fewer jobs and configurations (~1 minute)')
    ap.add_argument('--lat-jobs', type=int, default=None, help='latency jobs (default 200; 100 with --quick)')
    ap.add_argument('--gap-ms', type=float, default=20.0)
    ap.add_argument('--no-profile', action='store_true')
    ap.add_argument('--out', type=Path, default=RESULTS)
    ap.add_argument('--report-from', type=Path, help="only rewrite pg.md (and pg.json) from this run's pg.json")
    a = ap.parse_args()
    if a.report_from:
        res = json.loads(a.report_from.read_text()); res.pop('drain_table', None); res.pop('findings', None)
        return write_report(res, a.out / 'pg.md', a.out / 'pg.json')
    n = a.jobs or (1000 if a.quick else 5000)
    lat_n = a.lat_jobs or (100 if a.quick else 200)
    gap = a.gap_ms / 1e3
    sys.path[:0] = [str(ROOT / 'tests'), str(HERE)]
    from pgserver import PgServer
    import psycopg, psycopg_pool, fh_saas
    t_start = perf_counter()
    res = dict(command=shlex.join(['.venv/bin/python', 'bench/bench_pg.py'] + sys.argv[1:]),
               date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               params=dict(jobs=n, lat_jobs=lat_n, gap_ms=a.gap_ms, tenants=len(TENANTS), quick=a.quick),
               drains=[], latency=[], profile={})
    def log(*x): print(f"[{perf_counter() - t_start:6.1f}s]", *x, flush=True)
    with tempfile.TemporaryDirectory(prefix='bench-pg-') as work, PgServer() as pg:
        os.chmod(work, 0o777)
        with psycopg.connect(pg.url, autocommit=True) as c:
            ver = c.execute("SELECT version()").fetchone()[0]
            settings = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in
                        ('fsync', 'synchronous_commit', 'wal_sync_method', 'commit_delay', 'shared_buffers')}
        fs = subprocess.run(['df', '-T', str(pg.data)], capture_output=True, text=True).stdout.splitlines()[-1].split()
        res['env'] = dict(loadavg_at_start=os.getloadavg(), python=platform.python_version(), postgres=' '.join(ver.split()[:2]), postgres_full=ver,
                          cores=os.cpu_count(), usable_cores=len(os.sched_getaffinity(0)), platform=platform.platform(),
                          psycopg=psycopg.__version__, psycopg_pool=psycopg_pool.__version__,
                          fh_saas=fh_saas.__version__, server_settings=', '.join(f"{k}={v}" for k, v in settings.items()),
                          data_fs=f"{fs[1]} ({fs[0]})")
        b = Bench(pg, work)
        # 1+2. drains: round 1 = every configuration; round 2 (not --quick) repeats the headline ones, interleaved,
        # because the machine's load drifts (the table shows the median and every run)
        def raw(procs_n, mode='autocommit', batch=1, rnd=1):
            d = b.drain_raw(n, procs_n, mode, batch); d['round'] = rnd; res['drains'].append(d)
            log(f"round {rnd}: raw {mode} x{procs_n} batch {batch}: {fmt(d['jobs_s'])} jobs/s")
        def fh(workers, conc, pt, env=None, rnd=1):
            d = b.drain_fh(n, workers, conc, pt, env=env); d['round'] = rnd; res['drains'].append(d)
            log(f"round {rnd}: fh-saas {workers} worker(s) c{conc} p{pt}{' ' + str(env) if env else ''}: "
                f"{fmt(d['jobs_s'])} jobs/s (wall {fmt(d['wall_jobs_s'])}), once {d['completed_once']}/{n}")
            return d
        for procs_n, mode, batch in [(1, 'autocommit', 1), (2, 'autocommit', 1), (1, 'pooled', 1), (1, 'batch', 32)]:
            raw(procs_n, mode, batch)
        grid = [(8, 2), (32, 8)] if a.quick else [(8, 2), (8, 8), (32, 2), (32, 8)]
        runs = {g: fh(1, *g)['jobs_s'] or 0 for g in grid}
        best = max(runs, key=runs.get)
        res['best_1_worker'] = dict(concurrency=best[0], per_tenant=best[1])
        if not a.quick: fh(1, *best, env=dict(FH_SAAS_JOB_THREADS='32'))  # more job threads (default 16)
        for g in dict.fromkeys([(8, 2), best]): fh(2, *g)
        if not a.quick:
            raw(1, rnd=2); fh(1, 8, 2, rnd=2); fh(1, *best, rnd=2)
            raw(2, rnd=2); fh(2, 8, 2, rnd=2); fh(2, *best, rnd=2)
        # 3. latency
        for w in (1, 2):
            d = b.latency_fh(lat_n, gap, w); d.pop('subs'); res['latency'].append(d)
            log(f"fh-saas latency {w} worker(s): p50 {d['lat_p50']:.2f} p99 {d['lat_p99']:.2f} ms")
        d = b.latency_raw(lat_n, gap); res['latency'].append(d)
        log(f"raw latency: p50 {d['lat_p50']:.2f} p99 {d['lat_p99']:.2f} ms")
        # 4. profile: per-phase timers (drain at the default and the best settings, latency), cProfile (drain)
        if not a.no_profile:
            pn = min(n, 2000)
            ph_path = Path(work) / 'phases.json'
            for key, g in (('drain', (8, 2)), ('drain_best', best)):
                if key == 'drain_best' and g == (8, 2): continue
                d = b.drain_fh(pn, 1, *g, env=dict(BENCH_PHASES=str(ph_path)), wrapped=True, label='instrumented')
                ph = json.loads(ph_path.read_text()); ph_path.unlink()
                plain = [x['jobs_s'] for x in res['drains'] if x['impl'] == 'fh-saas' and x['workers'] == 1
                         and (x['concurrency'], x['per_tenant']) == g and not x.get('env') and x['jobs_s']]
                res['profile'][key] = dict(run=d, plain_jobs_s=median(plain), cpu_s=ph['cpu_s'], wall_s=ph['wall_s'],
                                           phases=phase_table(ph, pn), rounds=claim_rounds(ph))
                log(f"profiled drain c{g[0]} p{g[1]}: {fmt(d['jobs_s'])} jobs/s")
            d = b.latency_fh(lat_n, gap, 1, env=dict(BENCH_PHASES=str(ph_path)), wrapped=True)
            ph = json.loads(ph_path.read_text())
            res['profile']['latency'] = dict(run={k: v for k, v in d.items() if k != 'subs'},
                                             breakdown=latency_breakdown(ph, d['subs']),
                                             phases=phase_table(ph, lat_n + 20))
            log(f"profiled latency: p50 {d['lat_p50']:.2f} ms")
            cp_path = Path(work) / 'worker.prof'
            cn = min(n, 1000)
            d = b.drain_fh(cn, 1, *best, env=dict(BENCH_CPROFILE=str(cp_path)), wrapped=True, label='cProfile')
            top, ours, tot = cprofile_top(cp_path)
            res['profile']['cprofile'] = dict(n=cn, run=d, top=top, ours=ours, total_s=tot)
            log(f"cProfile drain: {fmt(d['jobs_s'])} jobs/s")
        b.wlog.close()
        wl = (Path(work) / 'workers.log').read_text(errors='replace')
        res['worker_log_tail'] = wl[-3000:]
    res['elapsed_s'] = perf_counter() - t_start
    res['env']['loadavg_at_end'] = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    write_report(res, a.out / 'pg.md', a.out / 'pg.json')
    log(f"wrote {a.out / 'pg.md'} and {a.out / 'pg.json'}")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--raw-drain']:
        sys.path.insert(0, str(ROOT))
        raw_drain_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1:2] == ['--as-worker']:
        as_worker(sys.argv[2:])
    else: main()
