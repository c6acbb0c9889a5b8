#!/usr/bin/env python3
"""A misbehaving HTTP server for pacer's tests, in raw sockets (Python standard
library only): every way a server or a network can break HTTP/1.1 that a
client must survive with a clear outcome.

    misbehave_server.py     prints "URL BLACKHOLE" and runs until SIGTERM

URL is http://127.0.0.1:PORT. BLACKHOLE is http://127.0.0.1:PORT2, a port
that accepts no connection: its listen queue is kept full, so the kernel drops
every SYN and a connect() to it stays in progress until the client gives up
(for tests of cancelling a request that is still connecting, and of
connect_timeout). Both bind 127.0.0.1 only, on ephemeral ports.

Routes (the path of the request line; the query is ignored unless said):

    /ok                     200, "ok", keep-alive (the well-behaved baseline)
    /delay?ms=M             the same after M ms (default 100)
    /race?key=K&ms=M        keep-alive race: the first request on a connection
                            gets 200 "ok N" (N: requests served for K so far)
                            with keep-alive; the next request on that connection
                            is not answered: M ms (default 20) after it arrives
                            the server closes with a reset (SO_LINGER 0), as a
                            server that closes an idle connection just as the
                            client reuses it
    /race-fin?key=K         the same, closing with a FIN instead of a reset
    /close-after-headers    headers promising 1000 bytes, then close
    /short-body             Content-Length: 100, 10 bytes, then close
    /long-body              Content-Length: 5, then "hello, and more" (bytes past
                            the length), then close
    /chunked-bad            Transfer-Encoding: chunked with a chunk size "zz"
    /chunked-truncated      one chunk, then close without the last (0) chunk
    /nothing                reads the request, closes without a byte
    /reset                  reads the request, resets the connection
    /reset-midbody          headers and half the body, then a reset
    /not-http               answers "SSH-2.0-OpenSSH_9.2" (not HTTP at all)
    /huge-header?bytes=N    200 with one header line of N bytes (default 8 MiB)
    /many-headers?n=N       200 with N headers of 100 bytes (default 10000)
    /trickle?ms=M           the response one byte every M ms (default 100): a
                            slowloris server that never stalls long enough
                            for an idle timeout
    /stall-headers          the status line, then nothing (the connection
                            stays open until the client gives up)
    /big?bytes=N[&chunked=1]
                            200 with N bytes of "x", streamed (default 64 MiB),
                            with a Content-Length, or chunked (no length)
    /stats?key=K            {"connections": C, "requests": R} for key K: the
                            connections that carried requests with key=K, and
                            those requests

Any route counts its connection and request towards /stats?key=K when its
query has key=K.
"""
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()
KEY_CONNS = {}     # key -> set of connection ids
KEY_REQUESTS = {}  # key -> requests
NEXT_CONN = [0]


def reset(conn):
    """Closes with a reset (RST) instead of a FIN."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


def response(status, body, headers=(), keep_alive=True):
    if isinstance(body, str):
        body = body.encode()
    lines = ["HTTP/1.1 %s" % status, "Content-Length: %d" % len(body),
             "Content-Type: text/plain"]
    lines += ["%s: %s" % h for h in headers]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        with LOCK:
            NEXT_CONN[0] += 1
            self.id = NEXT_CONN[0]

    def read_request(self):
        """The next request: (path, query dict), or None at EOF. Bodies (by
        Content-Length) are read and dropped."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                return None
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) < 2:
            return None
        length = 0
        for l in lines[1:]:
            k, _, v = l.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip() or 0)
        while len(self.buf) < length:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        self.buf = self.buf[length:]
        u = urllib.parse.urlsplit(parts[1])
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query).items()}
        return u.path, q

    def send(self, data):
        self.sock.sendall(data)


def count(conn, q):
    key = q.get("key")
    if key is None:
        return 0
    with LOCK:
        KEY_CONNS.setdefault(key, set()).add(conn.id)
        KEY_REQUESTS[key] = KEY_REQUESTS.get(key, 0) + 1
        return KEY_REQUESTS[key]


def serve(sock):
    c = Conn(sock)
    served = 0
    try:
        while True:
            req = c.read_request()
            if req is None:
                sock.close()
                return
            path, q = req
            if path.startswith("/race"):
                if served > 0:
                    # The client reused the connection: it dies under it,
                    # once the client waits for the answer (its poll sees
                    # the reset, not its own read).
                    time.sleep(int(q.get("ms", 20)) / 1000.0)
                    if path == "/race-fin":
                        sock.close()
                    else:
                        reset(sock)
                    return
                n = count(c, q)
                c.send(response("200 OK", "ok %d" % n))
                served += 1
                continue
            count(c, q)
            served += 1
            if path == "/ok":
                c.send(response("200 OK", "ok"))
            elif path == "/delay":
                time.sleep(int(q.get("ms", 100)) / 1000.0)
                c.send(response("200 OK", "ok"))
            elif path == "/stats":
                key = q.get("key", "")
                with LOCK:
                    body = json.dumps({"connections": len(KEY_CONNS.get(key, ())),
                                       "requests": KEY_REQUESTS.get(key, 0)})
                c.send(response("200 OK", body, [("Content-Type", "application/json")]))
            elif path == "/close-after-headers":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                sock.close()
                return
            elif path == "/short-body":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                sock.close()
                return
            elif path == "/long-body":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more")
                sock.close()
                return
            elif path == "/chunked-bad":
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
                sock.close()
                return
            elif path == "/chunked-truncated":
                c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                sock.close()
                return
            elif path == "/nothing":
                sock.close()
                return
            elif path == "/reset":
                reset(sock)
                return
            elif path == "/reset-midbody":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
                time.sleep(0.05)
                reset(sock)
                return
            elif path == "/not-http":
                c.send(b"SSH-2.0-OpenSSH_9.2\r\n")
                time.sleep(0.05)
                sock.close()
                return
            elif path == "/huge-header":
                n = int(q.get("bytes", 8 << 20))
                c.send(b"HTTP/1.1 200 OK\r\nX-Huge: ")
                chunk = b"h" * 65536
                left = n
                while left > 0:
                    c.send(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
                c.send(b"\r\nContent-Length: 2\r\n\r\nok")
            elif path == "/many-headers":
                n = int(q.get("n", 10000))
                hdrs = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(n))
                c.send(b"HTTP/1.1 200 OK\r\n" + hdrs + b"Content-Length: 2\r\n\r\nok")
            elif path == "/trickle":
                ms = int(q.get("ms", 100))
                for b in response("200 OK", "x" * 1000):
                    c.send(bytes([b]))
                    time.sleep(ms / 1000.0)
            elif path == "/stall-headers":
                c.send(b"HTTP/1.1 200 OK\r\n")
                while sock.recv(65536):
                    pass
                sock.close()
                return
            elif path == "/big":
                n = int(q.get("bytes", 64 << 20))
                chunked = q.get("chunked") == "1"
                c.send(b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n\r\n"
                       if chunked else b"Content-Length: %d\r\n\r\n" % n))
                chunk = b"x" * (1 << 20)
                left = n
                while left > 0:
                    part = chunk[:min(left, len(chunk))]
                    c.send(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
                    left -= len(part)
                if chunked:
                    c.send(b"0\r\n\r\n")
            else:
                c.send(response("404 Not Found", "no route %s" % path))
    except OSError:
        # The client went away (a cancelled or failed request): not an error here.
        try:
            sock.close()
        except OSError:
            pass


def blackhole():
    """A listening socket whose accept queue is full: SYNs to it are dropped."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    # listen(0) queues one connection; these fill the queue (never accepted).
    fillers = []
    for _ in range(2):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)
    return lst, fillers, port


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    hole = blackhole()
    print("http://127.0.0.1:%d http://127.0.0.1:%d" % (srv.getsockname()[1], hole[2]),
          flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
