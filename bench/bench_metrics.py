"""Metrics benchmark: what one Prometheus scrape of every tenant's job figures costs (`fh_saas.metrics`).

N tenants (default 1,000), each with 5 jobs written through its `JobStore`: 2 completed, 1 failed, 1 pending and
due, 1 pending in an hour. Then, in a fresh child process (no store opened yet), a `metrics_registry(host)` like
the one `mount_metrics` serves, encoded with `prometheus_client.generate_latest`:
  1. cold: the first scrape (opens every tenant's store, then one `stats` statement each);
  2. warm: a scrape whose reading has expired (`cache=0`): one `stats` statement per tenant on stores already
     open, as every scrape past the cache is; the median of `--repeat` scrapes;
  3. cached: a scrape within the cache (`cache=60`): no database read, only the text encoding; the median.
It also reports the reading alone (`TenantCollector.read`, as `fh_saas_metrics_read_seconds` does), the size of a
scrape, its series, and the child's RSS, open files and CPU time. `--pg` does the same on a throwaway PostgreSQL
server (`tests/pgserver.py`), one schema per tenant. No timing assertions: it reports, it does not judge.

    .venv/bin/python bench/bench_metrics.py [--tenants 1000] [--repeat 5] [--pg]
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_tenants(host, n:int):
    "N tenants with 5 jobs each: 2 completed, 1 failed, 1 pending and due, 1 pending later."
    from fh_saas.db_host import gen_id, timestamp
    from fh_saas.store import store_for
    for k in range(n):
        st = store_for(host.create(f"t{k:04d}"))
        now = time.time()
        for run_at in (now - 60, now - 60, now - 60, now - 5, now + 3600):
            st.insert(dict(id=gen_id(), job_type='sync', status='pending', payload='{}', created_at=timestamp(now),
                           run_at=run_at, updated_at=timestamp(now)))
        rows = st.claim_due(now - 30, 30, 'bench', n=3)
        for r, end in zip(rows, ('completed', 'completed', 'failed')):
            st.finish(r['id'], r['attempt'], end, time.time(), **(dict(result='1') if end == 'completed' else
                                                                   dict(error_log='[]')))
        st.close()


def child(a):
    "In a fresh process: time cold, warm and cached scrapes; print one JSON line."
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from fh_saas.metrics import metrics_registry, TenantCollector
    host = host_of(a)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    def timed(reg):
        t = perf_counter(); body = generate_latest(reg); return perf_counter() - t, body
    cold, body = timed(metrics_registry(host, cache=0, timeout=600))
    warm_reg = metrics_registry(host, cache=0, timeout=600)
    warm = [timed(warm_reg)[0] for _ in range(a.repeat)]
    cached_reg = metrics_registry(host, cache=60, timeout=600)
    timed(cached_reg)
    cached = [timed(cached_reg)[0] for _ in range(a.repeat * 4)]
    coll = TenantCollector(host)
    reads = []
    for _ in range(a.repeat):
        r = coll.read(); reads.append(r.took)
    fams = list(text_string_to_metric_families(body.decode()))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    rss = {k: int(v.split()[0]) for k, _, v in (l.partition(':') for l in Path('/proc/self/status').read_text().splitlines())
           if k in ('VmRSS', 'VmHWM')}
    print(json.dumps(dict(tenants=len(r.tenants), read=len(r.stats), unreadable=len(r.unreadable),
                          cold_s=cold, warm_s=statistics.median(warm), warm_all=warm,
                          cached_s=statistics.median(cached), read_s=statistics.median(reads),
                          bytes=len(body), series=sum(len(f.samples) for f in fams),
                          cpu_s=(cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                          rss_kb=rss.get('VmRSS'), hwm_kb=rss.get('VmHWM'), fds=len(os.listdir('/proc/self/fd')))))


def host_of(a):
    if a.pg_url:
        from fh_saas.pg import PgHost
        return PgHost(a.pg_url)
    from fh_saas.db_host import SqliteHost
    return SqliteHost(a.dir)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tenants', type=int, default=1000)
    p.add_argument('--repeat', type=int, default=5)
    p.add_argument('--pg', action='store_true', help='on a throwaway PostgreSQL server, one schema per tenant')
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--dir', help=argparse.SUPPRESS)
    p.add_argument('--pg-url', help=argparse.SUPPRESS)
    a = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if a.child: return child(a)
    import contextlib
    with tempfile.TemporaryDirectory(prefix='bench-metrics-') as work, contextlib.ExitStack() as stack:
        a.dir = str(Path(work)/'tenants')
        if a.pg:
            sys.path.insert(0, str(ROOT/'tests'))
            from pgserver import PgServer
            a.pg_url = stack.enter_context(PgServer()).url
        t = perf_counter()
        make_tenants(host_of(a), a.tenants)
        load = os.getloadavg()[0]
        made = perf_counter() - t
        cmd = [sys.executable, __file__, '--child', '--repeat', str(a.repeat), '--dir', a.dir] + \
              (['--pg-url', a.pg_url] if a.pg else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        r = json.loads(out.stdout.strip().splitlines()[-1])
    backend = 'PostgreSQL (one schema per tenant, local server)' if a.pg else 'SQLite (one file per tenant)'
    print(f"{backend}: {r['tenants']:,} tenants x 5 jobs (made in {made:.1f} s); {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, load average {load:.1f} when it began")
    print(f"  scrape, cold (first: opens every store)  {r['cold_s'] * 1e3:8.0f} ms")
    print(f"  scrape, cache expired (median of {a.repeat})     {r['warm_s'] * 1e3:8.0f} ms   (runs {', '.join(f'{x * 1e3:.0f}' for x in r['warm_all'])} ms)")
    print(f"  reading alone (TenantCollector.read)     {r['read_s'] * 1e3:8.0f} ms   ({r['read_s'] / max(1, r['tenants']) * 1e6:.0f} us per tenant)")
    print(f"  scrape, cached (median of {a.repeat * 4})           {r['cached_s'] * 1e3:8.1f} ms")
    print(f"  one scrape: {r['bytes'] / 1e3:,.0f} kB, {r['series']:,} samples; tenants read {r['read']:,}, unreadable {r['unreadable']}")
    print(f"  child process: CPU {r['cpu_s']:.1f} s in all, RSS {r['rss_kb'] / 1024:.0f} MB (peak {r['hwm_kb'] / 1024:.0f} MB), "
          f"{r['fds']} open files")


if __name__ == '__main__':
    main()
