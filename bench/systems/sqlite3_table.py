"""The floor on fh-saas's own table: a bare stdlib `sqlite3` loop, no fh-saas code on the path, sending the three
committed writes fh-saas's `bg_task` path sends, in fh-saas's own words: its insert of a pending row (the columns
`submit` writes), its claim by id with its `RETURNING` (`JobStore.claim`'s statement) and its finish (the usual
case's `_FINISH_QUICK`), with the parameters fh-saas gives them, on fh-saas's schema (text ids, the indexes the
dashboard, claims and idempotency keys need) in a file made as fh-saas makes one (`PAGE_SIZE`-byte pages), WAL +
synchronous NORMAL, SQLite's own checkpoints. What any job runner keeping fh-saas's rows would spend in SQLite alone.
The task runs in the submitting coroutine."""
import os, sqlite3, time
from pathlib import Path
from fh_saas.db_host import gen_id, timestamp, PAGE_SIZE
from fh_saas.jobs import SCHEMA, INDEXES
from fh_saas.store import JobStore, _CLAIM_ONE, _FINISH_QUICK, _finish_args, _now_row, _bg, WAL_LIMIT, CHECK_WAL_EVERY

LABEL = "bare sqlite3 loop on fh-saas's table, same 3 commits"
BACKEND, PROCESS = 'sqlite', False

#: the columns `submit` writes for a job with no arguments, delay, timeout or key
COLS = ('id', 'job_type', 'status', 'payload', 'created_at', 'max_retries', 'run_at', 'func_path', 'timeout',
        'idem_key', 'updated_at', 'priority')
INSERT = f"INSERT INTO tenant_jobs ({', '.join(COLS)}) VALUES ({', '.join(':' + c for c in COLS)})"


def noop(): return None


class Kept:
    """A connection whose log is kept bounded as fh-saas keeps a store's, by the store's own code: every
    `CHECK_WAL_EVERY` statements the loop looks at the log's size; past `WAL_LIMIT` the store's background thread
    copies the log into the database in passive passes while the loop writes on, then restarts it in a short pause of
    the loop's writes (`JobStore._catch_up`). The loop's statements go on its own connection, with no fh-saas code
    around them. The least a runner pays for a bounded log without copying it in its own thread."""
    def __init__(self, db, path):
        self.db, self.wal, self.n = db, f"{path}-wal", 0
        self.store = JobStore(f"sqlite:///{path}", create=False)  # its checkpoints, its pause; never its statements
        db.execute(f'PRAGMA journal_size_limit={WAL_LIMIT}')

    @property
    def row_factory(self): return self.db.row_factory
    @row_factory.setter
    def row_factory(self, f): self.db.row_factory = f

    def execute(self, sql, args=()):
        st = self.store
        if st._held and not self.db.in_transaction:
            with st._pause: pass  # the log is restarting: go on the moment it has
        self.n += 1
        if self.n % CHECK_WAL_EVERY == 0 and not st._ckpt and os.path.getsize(self.wal) > WAL_LIMIT:
            st._ckpt = True; _bg.submit(st._catch_up)  # as `JobStore._back` starts one
        return self.db.execute(sql, args)

    def executescript(self, sql): return self.db.executescript(sql)

    def close(self):
        while self.store._ckpt: time.sleep(0.001)  # a catch-up still running: it ends first
        self.store.close(); self.db.close()


class System:
    #: True: SQLite's own, the commit that takes the log past 1,000 pages copies it into the database; False: none,
    #: the log only grows; 'thread': kept bounded from a thread of its own, as fh-saas keeps a store's (`Kept`)
    checkpoints = True

    async def setup(self, where):
        path = Path(where) / 'table.db'
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit: each write commits
        self.db.execute(f'PRAGMA page_size={PAGE_SIZE}')  # the pages of a file fh-saas makes
        self.db.execute('PRAGMA journal_mode=WAL'); self.db.execute('PRAGMA synchronous=NORMAL')
        if self.checkpoints is not True: self.db.execute('PRAGMA wal_autocheckpoint=0')
        self.db.executescript(SCHEMA + INDEXES)
        if self.checkpoints == 'thread': self.db = Kept(self.db, path)
        self.running, self.waiting, self.times = False, [], {}

    async def run_task(self): noop()

    async def _run(self, jid):
        t = time.time()
        (row,) = self.db.execute(_CLAIM_ONE, dict(_now_row(t), id=jid, lease=t + 60, worker='bench', claim=gen_id())).fetchall()
        await self.run_task()
        e = time.time()
        assert self.db.execute(_FINISH_QUICK, _finish_args(jid, row[4], 'completed', e, 'null')).rowcount == 1
        self.times[jid] = (t, e)

    async def start(self):
        self.running = True
        for jid in self.waiting: await self._run(jid)

    async def submit(self):
        jid, t = gen_id(), time.time(); ts = timestamp(t)
        self.db.execute(INSERT, dict(id=jid, job_type='noop', status='pending', payload='{}', created_at=ts,
                                     max_retries=3, run_at=t, func_path='systems.sqlite3_table:noop', timeout=None,
                                     idem_key=None, updated_at=ts, priority=0))
        if self.running: await self._run(jid)
        else: self.waiting.append(jid)
        return jid

    async def done(self, keys): return {k: self.times[k] for k in keys}

    async def stop(self): self.db.close()
