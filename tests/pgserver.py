"""A throwaway PostgreSQL server from Debian's package: its own data dir, on 127.0.0.1, trust auth, stopped after.

    with PgServer() as pg: pg.url  # postgresql://fh@127.0.0.1:PORT/fh
Used by the tests (a session fixture) and the benchmarks. As root it runs the server as the `postgres` user.
"""
import atexit, glob, os, shutil, socket, subprocess, tempfile, time
from pathlib import Path

def pg_bin() -> Path | None:
    "The bin folder of the newest installed PostgreSQL, or None."
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=lambda p: int(p.split('/')[4]))
    return Path(found[-1]).parent if found else None

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

class PgServer:
    def __init__(self, port: int | None = None):
        self.bin = pg_bin()
        if self.bin is None: raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.port = port or _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix='fhsaas-pg-'))
        self.data = self.dir/'data'
        self.as_root = os.geteuid() == 0

    def _run(self, *args, check=True, **kw):
        cmd = [str(a) for a in args]
        if self.as_root: cmd = ['runuser', '-u', 'postgres', '--'] + cmd
        return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)

    @property
    def url(self) -> str: return f"postgresql://fh@127.0.0.1:{self.port}/fh"

    def start(self):
        if not self.data.exists():
            if self.as_root: shutil.chown(self.dir, 'postgres', 'postgres')
            self._run(self.bin/'initdb', '-D', self.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync')
            with open(self.data/'postgresql.conf', 'a') as f:
                f.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                        "fsync = on\nmax_connections = 200\nshared_buffers = 128MB\n")
            self._start()
            self.psql("CREATE ROLE fh LOGIN SUPERUSER")
            self.psql("CREATE DATABASE fh OWNER fh")
        else: self._start()
        atexit.register(self.close)  # never leave a server behind, even when a test fails half-way
        return self

    def _start(self):
        self._run(self.bin/'pg_ctl', '-D', self.data, '-l', self.dir/'server.log', '-w', '-t', '60', 'start')

    def stop(self, mode: str = 'fast'):
        if self.data.exists(): self._run(self.bin/'pg_ctl', '-D', self.data, '-m', mode, '-w', 'stop', check=False)

    def restart(self, down_for: float = 0.0):
        "Stop the server (immediate mode: connections are cut), stay down `down_for` seconds, start it again."
        self.stop('immediate'); time.sleep(down_for); self._start()

    def psql(self, sql: str, db: str = 'postgres'):
        return self._run(self.bin/'psql', '-h', '127.0.0.1', '-p', self.port, '-U', 'postgres', '-d', db,
                         '-v', 'ON_ERROR_STOP=1', '-c', sql)

    def close(self):
        if self.dir.exists(): self.stop(); shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.close()
