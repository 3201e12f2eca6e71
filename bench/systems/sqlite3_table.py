"""The floor on fh-saas's own table: a bare stdlib `sqlite3` loop, no fh-saas code on the path, sending the three
committed writes fh-saas's `bg_task` path sends, in fh-saas's own words: its insert of a pending row (the columns
`submit` writes), its claim by id with its `RETURNING` (`JobStore.claim`'s statement) and its finish (the usual
case's `_FINISH_QUICK`), with the parameters fh-saas gives them, on fh-saas's schema (text ids, the indexes the
dashboard, claims and idempotency keys need) in a file made as fh-saas makes one (`PAGE_SIZE`-byte pages), WAL +
synchronous NORMAL, SQLite's own checkpoints. What any job runner keeping fh-saas's rows would spend in SQLite alone.
The task runs in the submitting coroutine."""
import os, sqlite3, threading, time
from pathlib import Path
from fh_saas.db_host import gen_id, timestamp, PAGE_SIZE
from fh_saas.jobs import SCHEMA, INDEXES
from fh_saas.store import (_CLAIM_ONE, _FINISH_QUICK, _finish_args, _now_row, WAL_LIMIT, CHECK_WAL_EVERY, CATCH_UP_FRAMES,
                           CATCH_UP_PASSES, PAUSE_MOST)

LABEL = "bare sqlite3 loop on fh-saas's table, same 3 commits"
BACKEND, PROCESS = 'sqlite', False

#: the columns `submit` writes for a job with no arguments, delay, timeout or key
COLS = ('id', 'job_type', 'status', 'payload', 'created_at', 'max_retries', 'run_at', 'func_path', 'timeout',
        'idem_key', 'updated_at', 'priority')
INSERT = f"INSERT INTO tenant_jobs ({', '.join(COLS)}) VALUES ({', '.join(':' + c for c in COLS)})"


def noop(): return None


class Kept:
    """A connection whose log is kept bounded from a thread of its own, as fh-saas keeps a store's: every
    `CHECK_WAL_EVERY` statements the loop looks at the log's size; past `WAL_LIMIT` a thread copies the log into the
    database in passive passes while the loop writes on, then restarts it in a short pause of the loop's writes (a
    `RESTART` checkpoint, at most `PAUSE_MOST` s of retries). The least a runner pays for a bounded log without
    copying it in its own thread."""
    def __init__(self, db, path):
        self.db, self.wal, self.n, self.held, self.pause = db, f"{path}-wal", 0, False, threading.Lock()
        self.thread = None  # the catch-up running, if any
        self.ck = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)  # never waits: retried
        for c in (db, self.ck): c.execute('PRAGMA synchronous=NORMAL'); c.execute(f'PRAGMA journal_size_limit={WAL_LIMIT}')

    @property
    def row_factory(self): return self.db.row_factory
    @row_factory.setter
    def row_factory(self, f): self.db.row_factory = f

    def execute(self, sql, args=()):
        if self.held and not self.db.in_transaction:
            with self.pause: pass  # the log is restarting: go on the moment it has
        self.n += 1
        if self.n % CHECK_WAL_EVERY == 0 and not (self.thread and self.thread.is_alive()) and os.path.getsize(self.wal) > WAL_LIMIT:
            self.thread = threading.Thread(target=self.catch_up, daemon=True); self.thread.start()
        return self.db.execute(sql, args)

    def executescript(self, sql): return self.db.executescript(sql)

    def catch_up(self):
        seen, last, caught = 0, None, False
        for _ in range(CATCH_UP_PASSES):
            busy, log, copied = self.ck.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchone()
            if busy: return
            new, seen, caught = (log - seen if log >= seen else log), log, copied == log
            if caught and last is not None and (new <= CATCH_UP_FRAMES or new > 0.75 * last): break
            last = new
        if not caught: return  # a reader holds back the rest: no pause could help
        with self.pause:
            self.held, end = True, time.monotonic() + PAUSE_MOST
            try:
                while self.ck.execute('PRAGMA wal_checkpoint(RESTART)').fetchone()[0] and time.monotonic() < end:
                    time.sleep(0.0001)
            finally: self.held = False

    def close(self):
        if self.thread: self.thread.join()
        self.ck.close(); self.db.close()


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
        if self.checkpoints == 'thread': self.db = Kept(self.db, path)
        self.db.executescript(SCHEMA + INDEXES)
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
