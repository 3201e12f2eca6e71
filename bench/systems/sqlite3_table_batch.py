"""The floor under the in-app scheduler's drain on SQLite: fh-saas's own claim statement (`JobStore.claim_due`'s,
up to 7 jobs at a time, what the scheduler's default `concurrency` of 8 lets one tenant take) and its grouped
finish (one guarded `UPDATE` a job, the usual case's `_FINISH_QUICK`), a round's ends and the next claim in one
transaction as the scheduler's refill sends them (`JobStore.finish_and_claim`), sent by a bare stdlib `sqlite3` loop on
fh-saas's table, with no scheduler and no runner; each claimed no-op runs in the loop itself. WAL + synchronous
NORMAL, SQLite's own checkpoints. What any runner sending the scheduler's statements at its default concurrency
would spend on SQLite alone. Jobs submitted while the consumer runs are claimed as the scheduler claims a burst
(its `cooldown`): a submit that comes `COOLDOWN` or more after the last claim starts a round at once, one that
comes sooner waits for the next round; a round ends the last round's jobs and claims up to 7 due jobs in one
commit, then runs them. What is left when the submits stop is claimed in rounds until nothing is due."""
import inspect, sqlite3, time
from fh_saas.scheduler import Scheduler
from fh_saas.db_host import gen_id
from fh_saas.store import JobStore, _CLAIM_SET, _STILL_PENDING, _RUN_COLS, _FINISH_QUICK, _finish_args, _now_row
from systems import sqlite3_table

LABEL = "bare sqlite3 loop on fh-saas's table, the scheduler's grouped claims and finishes"
BACKEND, PROCESS = 'sqlite', False
BATCH = 7
COOLDOWN = inspect.signature(Scheduler).parameters['cooldown'].default  # the scheduler's default, in seconds
CLAIM = (f"UPDATE tenant_jobs SET {_CLAIM_SET} WHERE "
         + JobStore.pick.format(f"SELECT id FROM tenant_jobs WHERE {JobStore.due} LIMIT :n")
         + f" AND {_STILL_PENDING} RETURNING {_RUN_COLS}")


class System(sqlite3_table.System):
    async def setup(self, where):
        await super().setup(where)
        self.db.row_factory = sqlite3.Row
        self.ran, self.last = [], 0.0  # the last round's (row, claimed, ended); when the last round began

    async def run_tasks(self, n):
        for _ in range(n): sqlite3_table.noop()

    async def _round(self) -> int:
        "End the last round's jobs and claim up to BATCH due jobs in one commit, then run them; how many it claimed."
        t = time.time()
        self.db.execute('BEGIN IMMEDIATE')
        for r, t0, e in self.ran: assert self.db.execute(_FINISH_QUICK, _finish_args(r['id'], r['attempt'], 'completed', e, 'null')).rowcount == 1
        rows = self.db.execute(CLAIM, dict(_now_row(t), lease=t + 60, worker='bench', n=BATCH, claim=gen_id())).fetchall()
        self.db.execute('COMMIT')
        for r, t0, e in self.ran: self.times[r['id']] = (t0, e)
        await self.run_tasks(len(rows))
        e = time.time()
        self.ran = [(r, t, e) for r in rows]
        return len(rows)

    async def _run(self, jid):
        "A job submitted while the consumer runs: a round now if the last began `COOLDOWN` ago or more, else in the next."
        if time.monotonic() - self.last < COOLDOWN: return
        self.last = time.monotonic()
        await self._round()

    async def _drain(self):
        "Rounds until nothing is due, and the last round's ends written."
        while await self._round() or self.ran: pass

    async def done(self, keys):
        if self.running: await self._drain()  # what the last submits left
        return await super().done(keys)

    async def start(self):
        self.running = True
        await self._drain()
