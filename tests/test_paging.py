"""Paging by cursor on both backends: walking `before=` from the newest job visits every job once, in the order
offset paging gives, with rows that share a `created_at` (the id decides) and with filters; `after=` walks back;
a capped count stops at its cap. (What a page costs at a million rows is bench/bench_paging.py's business.)"""
import time
from fh_saas.db_host import gen_id, timestamp
from fh_saas.utils_bgtsk import BackgroundTaskManager

def test_cursor_pages_visit_every_job_once_in_order(host):
    host.create('acme')
    m = BackgroundTaskManager(host.url('acme'))
    t0 = time.time()
    for k in range(23):   # written straight to the store: pairs share a created_at, three statuses
        ts = timestamp(t0 + k // 2)
        m.store.insert(dict(id=gen_id(), job_type='sync', status=('pending', 'failed', 'completed')[k % 3], payload='{}',
                            created_at=ts, run_at=t0 + 3600, updated_at=ts))
    for status in (None, 'failed'):
        want = [j.id for j in m.list_jobs(status=status, limit=1000)]
        got, cur = [], None
        while page := m.list_jobs(status=status, limit=4, before=cur):
            got += [j.id for j in page]; cur = page[-1].cursor
        assert got == want, (status, got, want)
        back, cur = [], m.list_jobs(status=status, limit=1000)[-1].cursor
        while page := m.list_jobs(status=status, limit=4, after=cur):
            back = [j.id for j in page] + back; cur = page[0].cursor
        assert back == want[:-1], status
    assert (m.count_jobs(), m.count_jobs(most=5), m.count_jobs(status='failed', most=100)) == (23, 5, 8)
