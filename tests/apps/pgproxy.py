"""A TCP proxy on 127.0.0.1 in front of a PostgreSQL server that can lose one reply on purpose.

    with CutProxy(('127.0.0.1', pg_port)) as px:
        px.arm(b'INSERT INTO')   # one shot
        ...                      # connect to 127.0.0.1:px.port

Armed with a byte marker, the proxy forwards the client message that contains it to the server, then holds the server's
reply until the server reports the transaction ended (a ReadyForQuery message with status `I`, idle: the statement or
its transaction is committed, or rolled back), and then closes both sockets without forwarding that reply: the work is
done on the server, the client sees a lost connection. Replies inside a transaction (status `T`/`E`) are forwarded, so
a marker in a statement of an explicit transaction cuts the reply to its COMMIT.
Connect with `sslmode=disable` so the stream is plain protocol messages.
"""
import socket, struct, threading, time

class _Conn:
    def __init__(self, proxy, client: socket.socket, server: socket.socket):
        self.proxy, self.client, self.server = proxy, client, server
        self.cut_mode, self.closed = False, False
        self.cut_started = 0.0

    def close(self):
        if self.closed: return
        self.closed = True
        for s in (self.client, self.server):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
            try: s.close()
            except OSError: pass

    def client_to_server(self):
        tail = b''
        try:
            while not self.closed:
                data = self.client.recv(65536)
                if not data: break
                marker = self.proxy.armed
                if marker is not None and not self.cut_mode and marker in tail + data:
                    with self.proxy.lock:
                        if self.proxy.armed is marker:  # one shot: only the first connection that sends it
                            self.proxy.armed = None
                            self.cut_mode, self.cut_started = True, time.monotonic()
                            self.proxy.triggered.append(bytes(marker))
                self.server.sendall(data)
                tail = (tail + data)[-256:]
        except OSError: pass
        finally:
            if not self.cut_mode: self.close()

    def server_to_client(self):
        held = b''  # in cut mode: server bytes since the trigger, parsed as protocol messages
        try:
            while not self.closed:
                data = self.server.recv(65536)
                if not data: break
                if not self.cut_mode:
                    self.client.sendall(data); continue
                held += data
                # forward whole replies that end in a transaction (ReadyForQuery 'T' or 'E'); cut at one that ends idle
                pos, reply_start = 0, 0
                while len(held) - pos >= 5:
                    typ, ln = held[pos:pos+1], struct.unpack('!I', held[pos+1:pos+5])[0]
                    if len(held) - pos < 1 + ln: break
                    if typ == b'Z':
                        status = held[pos+5:pos+6]
                        if status == b'I':  # committed (or rolled back): lose this reply
                            self.proxy.cuts += 1
                            self.proxy.lost.append(held[reply_start:pos+1+ln])
                            self.close(); return
                        self.client.sendall(held[reply_start:pos+1+ln]); reply_start = pos + 1 + ln
                    pos += 1 + ln
                held = held[reply_start:]
        except OSError: pass
        finally: self.close()


class CutProxy:
    "Forward 127.0.0.1:`port` to `upstream`; `arm(marker)` loses the reply to the next message holding `marker`."
    def __init__(self, upstream: tuple):
        self.upstream, self.armed, self.lock = upstream, None, threading.Lock()
        self.cuts, self.triggered, self.lost, self.conns = 0, [], [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0)); self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, name='pgproxy', daemon=True)

    def start(self):
        self.thread.start(); return self

    def arm(self, marker: bytes):
        with self.lock: self.armed = marker

    def disarm(self):
        with self.lock: self.armed = None

    def _accept(self):
        while not self.stopped:
            try: cli, _ = self.sock.accept()
            except OSError: return
            try: srv = socket.create_connection(self.upstream, timeout=5)
            except OSError: cli.close(); continue
            srv.settimeout(None)
            for s in (cli, srv): s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Conn(self, cli, srv)
            self.conns.append(c)
            for f in (c.client_to_server, c.server_to_client):
                threading.Thread(target=f, name='pgproxy-pump', daemon=True).start()

    def close(self):
        self.stopped = True
        try: self.sock.shutdown(socket.SHUT_RDWR)
        except OSError: pass
        try: self.sock.close()
        except OSError: pass
        for c in self.conns: c.close()

    def __enter__(self): return self.start()
    def __exit__(self, *exc): self.close()
