"""The floor under the in-app scheduler's drain on SQLite: fh-saas's own claim statement (`JobStore.claim_due`'s,
up to 7 jobs at a time, what the scheduler's default `concurrency` of 8 lets one tenant take) and its grouped
finish (one guarded `UPDATE` a job, the usual case's `_FINISH_QUICK`), a round's ends and the next claim in one
transaction as the scheduler's refill sends them (`JobStore.finish_and_claim`), sent by a bare stdlib `sqlite3` loop on
fh-saas's table, with no scheduler and no runner; each claimed no-op runs in the loop itself. WAL + synchronous
NORMAL, SQLite's own checkpoints. What any runner sending the scheduler's statements at its default concurrency
would spend on SQLite alone. A job submitted while the consumer runs is claimed alone and ended alone, as the
scheduler does with the one due job a submit told it of: its claim statement with `n` = 1, then its finish, each
in its own commit, and no claim after it."""
import sqlite3, time
from fh_saas.db_host import gen_id
from fh_saas.store import JobStore, _CLAIM_SET, _STILL_PENDING, _RUN_COLS, _FINISH_QUICK, _finish_args, _now_row
from systems import sqlite3_table

LABEL = "bare sqlite3 loop on fh-saas's table, the scheduler's grouped claims and finishes"
BACKEND, PROCESS = 'sqlite', False
BATCH = 7
CLAIM = (f"UPDATE tenant_jobs SET {_CLAIM_SET} WHERE "
         + JobStore.pick.format(f"SELECT id FROM tenant_jobs WHERE {JobStore.due} LIMIT :n")
         + f" AND {_STILL_PENDING} RETURNING {_RUN_COLS}")


class System(sqlite3_table.System):
    async def setup(self, where):
        await super().setup(where)
        self.db.row_factory = sqlite3.Row

    async def run_tasks(self, n):
        for _ in range(n): sqlite3_table.noop()

    async def _drain(self):
        "Claim up to BATCH due jobs and run them; end them in one transaction with the next claim; again until none is due."
        ran, t0, e = [], None, None  # the last round's jobs, when they were claimed and when they ended
        while True:
            t = time.time()
            self.db.execute('BEGIN IMMEDIATE')  # a round's ends and the next claim in one commit, as the scheduler's refill
            for r in ran: assert self.db.execute(_FINISH_QUICK, _finish_args(r['id'], r['attempt'], 'completed', e, 'null')).rowcount == 1
            rows = self.db.execute(CLAIM, dict(_now_row(t), lease=t + 60, worker='bench', n=BATCH, claim=gen_id())).fetchall()
            self.db.execute('COMMIT')
            for r in ran: self.times[r['id']] = (t0, e)
            if not rows: return
            await self.run_tasks(len(rows))
            ran, t0, e = rows, t, time.time()

    async def _run(self, jid):
        "A job submitted while the consumer runs: claimed alone (`n` = 1), run, ended alone."
        t = time.time()
        rows = self.db.execute(CLAIM, dict(_now_row(t), lease=t + 60, worker='bench', n=1, claim=gen_id())).fetchall()
        await self.run_tasks(len(rows))
        e = time.time()
        for r in rows:
            assert self.db.execute(_FINISH_QUICK, _finish_args(r['id'], r['attempt'], 'completed', e, 'null')).rowcount == 1
            self.times[r['id']] = (t, e)

    async def start(self):
        self.running = True
        await self._drain()
