"Property test of the job life cycle: random sequences of operations never reach an illegal state or lose a job."
import tempfile
from pathlib import Path
from hypothesis import settings, HealthCheck, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, invariant, precondition, initialize, Bundle
from fh_saas.utils_bgtsk import BackgroundTaskManager, Outcome, STATUSES, JobStore, JobContext

def noop(): return None

class Clock:
    def __init__(self): self.t = 1_000_000.0
    def __call__(self): return self.t

class JobLifecycle(RuleBasedStateMachine):
    jobs = Bundle('jobs')

    @initialize()
    def setup(self):
        self.clock = Clock()
        self.store = JobStore(f"sqlite:///{tempfile.mkdtemp()}/p.db")
        self.mgr = BackgroundTaskManager(self.store, clock=self.clock, lease=30)
        self.model = {}   # id -> dict(status, attempt, retry_count, max_retries, run_at)

    @rule(target=jobs, max_retries=st.integers(0, 3), delay=st.sampled_from([0, 0, 5]))
    def submit(self, max_retries, delay):
        i, _ = self.mgr.enqueue('lifecycle-noop', noop, max_retries=max_retries, delay=delay)
        self.model[i] = dict(status='pending', attempt=0, retry_count=0, max_retries=max_retries,
                             run_at=self.clock() + delay, cancel=False)
        return i

    @rule(i=jobs)
    def claim(self, i):
        m = self.model[i]
        row = self.store.claim(i, self.clock(), 30, 'w')
        can = m['status'] == 'pending' and m['run_at'] <= self.clock()
        assert (row is not None) == can, (m, row)
        if row: m.update(status='running', attempt=m['attempt'] + 1, lease_until=self.clock() + 30)

    def _record(self, i, out):
        m = self.model[i]
        row = self.store.get(i)
        status, run_at = self.mgr.runner.record(row, out, JobContext(self.store, row, self.clock, 30), patient=False)
        if m['status'] != 'running':
            assert status is None   # nothing to record: the write must lose
            return
        if out.kind == 'ok': m['status'] = 'completed'
        elif out.kind == 'cancelled': m['status'] = 'cancelled'
        elif m['retry_count'] < m['max_retries']:
            m.update(status='pending', retry_count=m['retry_count'] + 1, run_at=self.clock() + 2 ** (m['retry_count'] + 1))
            if not m['cancel']: assert run_at == m['run_at']
        else: m['status'] = 'failed'
        if m['cancel']: m['status'] = 'cancelled'   # a cancel asked while it ran is sticky, whatever the attempt did
        assert status == m['status'], (status, m)

    @rule(i=jobs)
    def complete(self, i): self._record(i, Outcome('ok', 1))

    @rule(i=jobs)
    def fail(self, i): self._record(i, Outcome('error', exc=ValueError('boom')))

    @rule(i=jobs)
    def fail_every_attempt(self, i):
        "Wait out each backoff, claim, fail, until the job is out of retries: every delay of its chain is checked."
        for _ in range(5):
            m = self.model[i]
            if m['status'] != 'pending': return
            self.clock.t = max(self.clock.t, m['run_at'])
            self.claim(i); self.fail(i)

    @rule(i=jobs, wait=st.sampled_from([0, 2, 4, 8]))
    def wait_claim_fail(self, i, wait):
        "Wait out a backoff, claim, fail: one step that takes a job a retry deeper (so delays 2, 4, 8 are checked)."
        self.clock.t += wait
        self.claim(i)
        self.fail(i)

    @rule(i=jobs)
    def stale_write(self, i):
        "A runner of an older attempt writes late: it must change nothing."
        m, before = self.model[i], self.store.get(i)
        assert not self.store.finish(i, m['attempt'] - 1, 'completed', self.clock(), result='0')
        assert not self.store.reschedule(i, m['attempt'] - 1, self.clock(), self.clock(), '[]')
        assert self.store.get(i) == before

    @rule(seconds=st.sampled_from([1, 2, 4, 8, 16, 31]))
    def advance(self, seconds): self.clock.t += seconds

    @rule()
    def rescue(self):
        "Leases that expired are rescued: pending again (a retry counted) or failed."
        n = self.store.rescue(self.clock())
        expired = [i for i, m in self.model.items() if m['status'] == 'running' and m['lease_until'] < self.clock()]
        assert n == len(expired)
        for i in expired:
            m = self.model[i]
            if m['retry_count'] < m['max_retries']: m.update(status='pending', retry_count=m['retry_count'] + 1, run_at=self.clock())
            else: m['status'] = 'failed'
            if m['cancel']: m['status'] = 'cancelled'

    @rule(i=jobs)
    def cancel(self, i):
        m = self.model[i]
        after = self.mgr.cancel(i)
        if m['status'] == 'pending': m['status'] = 'cancelled'
        if m['status'] in ('running', 'cancelled'): m['cancel'] = True   # asked: sticky until a retry by hand
        assert after == m['status']

    @rule(i=jobs)
    def manual_retry(self, i):
        m = self.model[i]
        if m['status'] in ('failed', 'cancelled'):
            self.mgr.retry(i)
            m.update(status='pending', retry_count=0, run_at=self.clock(), cancel=False)
        else:
            try: self.mgr.retry(i); assert False, 'retry of a job that is not failed/cancelled must be refused'
            except ValueError: pass

    @invariant()
    def table_matches_model(self):
        if not hasattr(self, 'mgr'): return
        assert self.mgr.count_jobs() == len(self.model)          # nothing lost, nothing added
        for i, m in self.model.items():
            j = self.mgr.get_job(i)
            assert j.status in STATUSES
            assert (j.status, j.attempt, j.retry_count) == (m['status'], m['attempt'], m['retry_count']), (i, j, m)
            assert j.retry_count <= j.max_retries
            if j.status == 'running': assert j.lease_until is not None
            if j.status in ('completed', 'failed'): assert j.completed_at is not None
            if j.status == 'completed': assert j.result == 1
            assert j.cancel_requested == m['cancel'], (j, m)

TestJobLifecycle = JobLifecycle.TestCase
TestJobLifecycle.settings = settings(max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
                                     suppress_health_check=[HealthCheck.too_slow])
