"""Task functions for the load and PostgreSQL fault tests.

Each body execution writes a `start` line when it begins and an `end` line when it stops (returns, raises or is
cancelled), one O_APPEND write each, to $EXEC_LOG:
    start <job id> <attempt> <pid> <time.time()> <task>
    end <job id> <attempt> <pid> <time.time()> <how>
"""
import asyncio, os, time
from pathlib import Path
from fh_saas.utils_bgtsk import current_job

def _log(event: str, how: str):
    j = current_job()
    line = f"\n{event} {j.id} {j.attempt} {os.getpid()} {time.time():.6f} {how}\n"  # its own line even after a torn one
    fd = os.open(os.environ['EXEC_LOG'], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try: os.write(fd, line.encode())
    finally: os.close(fd)

def noop():
    "No log: for tests that only need a row."
    return 'ok'

def sync_work(ms: int = 0):
    _log('start', 'sync_work'); how = 'raised'
    try:
        time.sleep(ms / 1000); how = 'ok'
        return ms
    finally: _log('end', how)

async def async_work(ms: int = 0):
    _log('start', 'async_work'); how = 'cancelled'
    try:
        await asyncio.sleep(ms / 1000); how = 'ok'
        return ms
    finally: _log('end', how)

def sync_flaky(marker: str, ms: int = 50):
    "Fails its first attempt (creates `marker`), succeeds after."
    _log('start', 'sync_flaky'); how = 'raised'
    try:
        if not Path(marker).exists():
            Path(marker).write_text('1')
            raise ConnectionError('flaky: first attempt fails')
        time.sleep(ms / 1000); how = 'ok'
        return 'second time lucky'
    finally: _log('end', how)

async def async_flaky(marker: str, ms: int = 50):
    _log('start', 'async_flaky'); how = 'cancelled'
    try:
        if not Path(marker).exists():
            Path(marker).write_text('1')
            how = 'raised'
            raise ConnectionError('flaky: first attempt fails')
        await asyncio.sleep(ms / 1000); how = 'ok'
        return 'second time lucky'
    finally: _log('end', how)

def sync_sleepy(ms: int):
    "Ignores cancellation: sleeps `ms` whatever happens (a thread nobody can stop)."
    _log('start', 'sync_sleepy'); how = 'raised'
    try:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end: time.sleep(0.02)
        how = 'ok'
        return ms
    finally: _log('end', how)

async def async_sleepy(ms: int):
    _log('start', 'async_sleepy'); how = 'cancelled'
    try:
        await asyncio.sleep(ms / 1000); how = 'ok'
        return ms
    finally: _log('end', how)

def sync_cancellable(ms: int):
    "Runs up to `ms`, checking for a cancel request every 20 ms."
    _log('start', 'sync_cancellable'); how = 'raised'
    try:
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            current_job().check_cancelled()
            time.sleep(0.02)
        how = 'ok'
        return ms
    finally: _log('end', how)

async def async_cancellable(ms: int):
    _log('start', 'async_cancellable'); how = 'cancelled'
    try:
        await asyncio.sleep(ms / 1000); how = 'ok'
        return ms
    finally: _log('end', how)

def read_log(path) -> list[dict]:
    "The lines of an $EXEC_LOG as dicts: event, id, attempt, pid, t, how."
    out = []
    p = Path(path)
    if not p.exists(): return out
    for ln in p.read_text().splitlines():
        parts = ln.split()
        if len(parts) != 6: continue
        ev, jid, att, pid, t, how = parts
        out.append(dict(event=ev, id=jid, attempt=int(att), pid=int(pid), t=float(t), how=how))
    return out
