#!/usr/bin/env python3
"""Local HTTP(S) fixture server for pacer's tests. Python standard library
only (plus the openssl and nginx programs for --mode https).

    fixture_server.py --mode http     prints "URL" (http://127.0.0.1:PORT)
    fixture_server.py --mode hn       the same server (it serves /hn/v0/... too)
    fixture_server.py --mode https    prints "URL CAFILE": nginx over TLS with
                                      HTTP/2, a certificate made at start for
                                      127.0.0.1 and signed by a throwaway CA
                                      whose certificate is CAFILE

The first stdout line is flushed as soon as the server accepts connections;
the server runs until SIGTERM or SIGINT. It
binds 127.0.0.1 only, on an ephemeral port.

HTTP routes (HTTP/1.1 keep-alive; every response has a Content-Length):

    /delay?ms=N                 answers after N ms
    /status/CODE                answers with that status ("status CODE")
    /flaky?key=K&fail=N         503 for the first N requests with key K, then 200
    /retry-after?key=K&secs=S[&date=1]
                                first request per key: 429 with Retry-After: S
                                (as delta-seconds, or as an HTTP-date); then 200
    /echo                       the request as JSON: method, path, query (name ->
                                list of values), raw_query, headers (lower-cased
                                names), body, json (when the body parses)
    /post, /anything[/...]      as /echo (httpbin-style webhook stand-ins;
                                /post answers 405 to other methods)
    /json/ANYTHING              a fixed JSON object (plus "path")
    /big?bytes=N                N bytes of "x"
    /drop                       closes the connection without a response
    /truncate                   promises 1000 bytes, sends 100, resets the connection
    /slow-body?ms=N             headers at once, then the body a byte at a time over N ms
    /storm?key=K&fail=N&secs=S  503 with Retry-After: S for the first N requests, then 200
    /badjson                    200, Content-Type application/json, body not JSON
    /raw?body=TEXT              200, Content-Type application/json, body TEXT as given
                                (or, without ?body, the request's body)
    /binary[?status=N]          a PNG header followed by terminal escapes (ESC, CR, C1)
                                and bytes that are not UTF-8
    /redirect?n=N[&ms=M]        302 chain of N hops, then 200 {"redirected": true};
                                every response after M ms
    /loop                       302 to itself, forever
    /headers?NAME=VALUE...      200 with those response headers (repeatable)
    /stats[?key=K]              {"connections": C, "requests": R}: new TCP
                                connections accepted and requests served since
                                the last reset; with key, the requests carrying
                                key=K and the number of distinct connections
                                that served them (so parallel tests do not
                                disturb each other; /stats itself is not counted)
    /stats/reset                resets the global counters
    /pages?page=P&pages=N&per=K page P (from 1) of N, items (P-1)*K+1 .. P*K as
                                {"items", "next" (relative URL or null),
                                "cursor" (next page number or null)} plus a
                                Link rel="next" header (paginate plugin)
    /hn/v0/topstories.json      from tests/fixtures/hn (a copy of the shape of
    /hn/v0/item/ID.json         the Hacker News API)

Any route counts towards /stats?key=K when its query has key=K.

HTTPS routes (nginx): /conn answers {"connection": N, "requests": R, "protocol":
"HTTP/2.0"} where N is nginx's connection serial number (equal for requests
multiplexed on one connection); /method answers the request's method,
Content-Length ("length") and Content-Type ("type"), its protocol and
connection; /r301, /r302, /r303, /r307 and /r308 redirect to /method with
that status; /hello.json is a static JSON file; /hn/v0/... as above; /tls
answers {"protocol", "verify", "subject"}: the TLS version (nginx offers
TLS 1.2 only) and the client
certificate's verification and subject (client.pem, client.key and
client-enc.key, passphrase "client-key-pass", lie beside the CA file).
The same nginx answers /unix with {"via": "unix", "host"} over plain HTTP
on the unix socket nginx.sock beside the CA file.
"""
import argparse
import ctypes
import http.server
import itertools
import json
import os
import shutil
import signal
import socket
import struct
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from email.utils import formatdate

HERE = os.path.dirname(os.path.abspath(__file__))
HN_DIR = os.path.join(HERE, "fixtures", "hn")

LOCK = threading.Lock()
CONN_IDS = itertools.count(1)
STATS = {"connections": 0, "requests": 0}
KEY_CONNS = {}      # key -> set of connection ids
KEY_REQUESTS = {}   # key -> request count
FLAKY = {}          # key -> failures served
RETRY_AFTER = {}    # key -> requests seen
DEPLOYS = {}        # deployment id -> [polls until done, polls seen, final state]

JSON_OBJECT = {"name": "pacer", "n": 3, "items": [1, 2, 3], "nested": {"ok": True},
               "text": "caf\u00e9"}


def load_hn():
    with open(os.path.join(HN_DIR, "topstories.json"), encoding="utf-8") as f:
        top = json.load(f)
    with open(os.path.join(HN_DIR, "items.json"), encoding="utf-8") as f:
        items = json.load(f)
    return top, items


HN_TOP, HN_ITEMS = load_hn()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_version = "pacer-fixture"
    sys_version = ""

    def setup(self):
        super().setup()
        with LOCK:
            self.conn_id = next(CONN_IDS)
            STATS["connections"] += 1

    def log_message(self, fmt, *args):  # quiet
        pass

    # ------------------------------------------------------------ helpers

    def send(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if status in (204, 304) or status < 200:
            # These never have a body (RFC 9110), so no Content-Length.
            self.end_headers()
            return
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, headers=()):
        self.send(status, json.dumps(obj), "application/json", headers)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # ------------------------------------------------------------ dispatch

    def handle_any(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        one = {k: v[-1] for k, v in q.items()}
        body = self.read_body()
        key = one.get("key")
        with LOCK:
            STATS["requests"] += 1
            if key is not None and not u.path.startswith("/stats"):
                KEY_CONNS.setdefault(key, set()).add(self.conn_id)
                KEY_REQUESTS[key] = KEY_REQUESTS.get(key, 0) + 1
        path = u.path
        if path == "/delay":
            time.sleep(int(one.get("ms", "0")) / 1000.0)
            return self.send_json(200, {"delayed_ms": int(one.get("ms", "0"))})
        if path.startswith("/status/"):
            code = int(path.split("/")[2])
            return self.send(code, "status %d" % code)
        if path == "/flaky":
            fail = int(one.get("fail", "1"))
            with LOCK:
                seen = FLAKY.get(key, 0)
                FLAKY[key] = seen + 1
            if seen < fail:
                return self.send(503, "flaky: failure %d of %d" % (seen + 1, fail))
            return self.send_json(200, {"ok": True, "attempt": seen + 1})
        if path == "/retry-after":
            with LOCK:
                seen = RETRY_AFTER.get(key, 0)
                RETRY_AFTER[key] = seen + 1
            if seen == 0:
                secs = int(one.get("secs", "1"))
                value = formatdate(time.time() + secs, usegmt=True) if one.get("date") else str(secs)
                return self.send(429, "slow down", headers=[("Retry-After", value)])
            return self.send_json(200, {"ok": True, "attempt": seen + 1})
        if path == "/deployments" and self.command == "POST":
            # A deployment that is RUNNING for `polls` - 1 reads of its
            # state, then `final` (workflows/deploy_and_poll.yml).
            dep = one.get("key") or "d%d" % (len(DEPLOYS) + 1)
            with LOCK:
                DEPLOYS[dep] = [int(one.get("polls", "3")), 0, one.get("final", "SUCCEEDED")]
            return self.send_json(201, {"id": dep, "state": "PENDING"})
        if path.startswith("/deployments/"):
            dep = path.split("/")[2]
            with LOCK:
                d = DEPLOYS.get(dep)
                if d is not None:
                    d[1] += 1
                    state = d[2] if d[1] >= d[0] else "RUNNING"
            if d is None:
                return self.send_json(404, {"error": "no deployment %s" % dep})
            return self.send_json(200, {"id": dep, "state": state, "polls": d[1]})
        if path in ("/post", "/anything") or path.startswith("/anything/"):
            # httpbin-style webhook stand-ins (workflows/nightly_job.yml)
            if path == "/post" and self.command != "POST":
                return self.send(405, "method not allowed", headers=[("Allow", "POST")])
            path = "/echo"
        if path == "/login":
            # A login stand-in for the flow examples (workflows/flows/login.yml):
            # POST {"user": U, "password": "s3cret-pw"} -> {"token": "tok-U"}.
            try:
                creds = json.loads(body.decode("utf-8"))
            except ValueError:
                creds = {}
            if self.command != "POST" or not isinstance(creds, dict):
                return self.send(405, "POST a JSON object")
            if creds.get("password") != "s3cret-pw" or not creds.get("user"):
                return self.send_json(401, {"error": "bad credentials"})
            return self.send_json(200, {"token": "tok-%s" % creds["user"]})
        if path == "/whoami":
            auth = self.headers.get("Authorization") or ""
            if not auth.startswith("Bearer tok-"):
                return self.send_json(401, {"error": "no token"})
            return self.send_json(200, {"user": auth[len("Bearer tok-"):]})
        if path == "/echo":
            text = body.decode("utf-8", "replace")
            obj = {"method": self.command, "path": u.path, "query": q, "raw_query": u.query,
                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text}
            try:
                obj["json"] = json.loads(text)
            except ValueError:
                pass
            return self.send_json(200, obj)
        if path.startswith("/json/"):
            return self.send_json(200, dict(JSON_OBJECT, path=path))
        if path == "/big":
            n = int(one.get("bytes", "0"))
            if self.command == "HEAD":  # the length of a body it does not send
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(n))
                self.end_headers()
                return
            return self.send(200, b"x" * n)
        if path == "/drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if path == "/truncate":
            # A reset in the middle of the body: headers promise more than comes.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"y" * 100)
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))  # RST, not FIN
                self.connection.close()
            except OSError:
                pass
            return
        if path == "/slow-body":
            ms = int(one.get("ms", "1000"))
            body = b"z" * 20
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for b in body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(ms / 1000.0 / len(body))
            except OSError:
                self.close_connection = True  # the client gave up: fine
            return
        if path == "/storm":
            fail = int(one.get("fail", "3"))
            with LOCK:
                seen = FLAKY.get("storm:%s" % key, 0)
                FLAKY["storm:%s" % key] = seen + 1
            if seen < fail:
                return self.send(503, "overloaded %d of %d" % (seen + 1, fail),
                                 headers=[("Retry-After", one.get("secs", "1"))])
            return self.send_json(200, {"ok": True, "attempt": seen + 1})
        if path == "/binary":
            # A PNG header, then what a hostile server would put in front of a
            # terminal: clear screen, a window title, CR, C1 CSI, stray bytes.
            body = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x1b[2J\x1b]0;pwned\x07"
                    b"\rfake line\x9b31m\xc2\x9b\xff\xfe\xe2\x82 end")
            return self.send(int(one.get("status", "200")), body, "image/png")
        if path == "/raw":
            return self.send(200, one["body"] if "body" in one else body, "application/json")
        if path == "/badjson":
            return self.send(200, "<html>this is not JSON</html>", "application/json")
        if path == "/redirect":
            n = int(one.get("n", "1"))
            ms = int(one.get("ms", "0"))
            time.sleep(ms / 1000.0)
            if n <= 0:
                return self.send_json(200, {"redirected": True})
            nxt = "/redirect?n=%d" % (n - 1) + ("&ms=%d" % ms if ms else "")
            return self.send(302, "", headers=[("Location", nxt)])
        if path == "/loop":
            return self.send(302, "", headers=[("Location", "/loop")])
        if path == "/headers":
            hs = [(k, v) for k, vs in q.items() for v in vs]
            return self.send(200, "headers", headers=hs)
        if path == "/stats":
            with LOCK:
                if key is not None:
                    obj = {"connections": len(KEY_CONNS.get(key, ())),
                           "requests": KEY_REQUESTS.get(key, 0)}
                else:
                    obj = dict(STATS)
            return self.send_json(200, obj)
        if path == "/stats/reset":
            with LOCK:
                STATS["connections"] = 0
                STATS["requests"] = 0
            return self.send_json(200, {"reset": True})
        if path == "/pages":
            page, pages, per = (int(one.get("page", "1")), int(one.get("pages", "3")),
                                int(one.get("per", "2")))
            nxt = ("/pages?page=%d&pages=%d&per=%d" % (page + 1, pages, per)
                   if page < pages else None)
            hs = [("Link", '<%s>; rel="next"' % nxt)] if nxt else []
            return self.send_json(200, {"items": list(range((page - 1) * per + 1, page * per + 1)),
                                        "next": nxt, "cursor": page + 1 if nxt else None}, hs)
        if path == "/hn/v0/topstories.json":
            return self.send_json(200, HN_TOP)
        if path.startswith("/hn/v0/item/") and path.endswith(".json"):
            item = HN_ITEMS.get(path[len("/hn/v0/item/"):-len(".json")])
            return self.send_json(200, item)  # the real API answers null for unknown ids
        return self.send(404, "not found: %s" % path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that cancel (timeouts, fail_fast) reset their connections.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def serve_http():
    srv = Server(("127.0.0.1", 0), Handler)
    print("http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


# ---------------------------------------------------------------- https

def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certs(d):
    """A throwaway CA and a certificate for 127.0.0.1/localhost signed by it."""
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj",
         "/CN=pacer test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], d)
    run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"], d)
    # A client certificate signed by the same CA (http cert/key, issue 15):
    # client.pem, its key client.key and the same key encrypted with the
    # passphrase "client-key-pass" (client-enc.key), beside ca.pem.
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=pacer client"], d)
    run(["openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "client.pem", "-days", "2"], d)
    run(["openssl", "pkey", "-in", "client.key", "-aes256", "-passout", "pass:client-key-pass",
         "-out", "client-enc.key"], d)
    return os.path.join(d, "ca.pem")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp_body;
  proxy_temp_path {d}/tmp_proxy;
  fastcgi_temp_path {d}/tmp_fastcgi;
  uwsgi_temp_path {d}/tmp_uwsgi;
  scgi_temp_path {d}/tmp_scgi;
  types {{ application/json json; text/plain txt; }}
  default_type application/octet-stream;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    http2_max_concurrent_streams 256;
    root {d}/www;
    location = /conn {{
      default_type application/json;
      return 200 '{{"connection": $connection, "requests": $connection_requests, "protocol": "$server_protocol"}}\\n';
    }}
    location /hn/v0/ {{ alias {d}/www/hn/; }}
    location = /method {{
      default_type application/json;
      return 200 '{{"method": "$request_method", "length": "$content_length", "type": "$content_type", "protocol": "$server_protocol", "connection": $connection}}\n';
    }}
    location = /r301 {{ return 301 /method; }}
    location = /r302 {{ return 302 /method; }}
    location = /r303 {{ return 303 /method; }}
    location = /r307 {{ return 307 /method; }}
    location = /r308 {{ return 308 /method; }}
    # issue 15: the TLS version (TLS 1.2 at most, nginx 1.22's default made
    # explicit: a client that asks for 1.3 at least is refused) and the
    # client certificate, if any
    ssl_protocols TLSv1.2;
    ssl_verify_client optional;
    ssl_client_certificate {d}/ca.pem;
    location = /tls {{
      default_type application/json;
      return 200 '{{"protocol": "$ssl_protocol", "verify": "$ssl_client_verify", "subject": "$ssl_client_s_dn"}}\n';
    }}
  }}
  # issue 15: plain HTTP on a unix socket (nginx.sock beside ca.pem)
  server {{
    listen unix:{d}/nginx.sock;
    location = /unix {{
      default_type application/json;
      return 200 '{{"via": "unix", "host": "$host"}}\n';
    }}
  }}
}}
"""


def set_pdeathsig():
    """Child side of Popen: die with the fixture script (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def serve_https():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.stderr.write("fixture_server: --mode https needs nginx (apt-get install nginx)\n")
        sys.exit(1)
    d = tempfile.mkdtemp(prefix="pacer-https-")
    os.chmod(d, 0o755)
    cafile = make_certs(d)
    www = os.path.join(d, "www")
    os.makedirs(os.path.join(www, "hn", "item"))
    with open(os.path.join(www, "hello.json"), "w") as f:
        json.dump({"hello": "world"}, f)
    with open(os.path.join(www, "hn", "topstories.json"), "w") as f:
        json.dump(HN_TOP, f)
    for k, v in HN_ITEMS.items():
        with open(os.path.join(www, "hn", "item", k + ".json"), "w") as f:
            json.dump(v, f)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    p = subprocess.Popen([nginx, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         preexec_fn=set_pdeathsig)

    def stop(*_):
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(d, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + 10
    while True:
        if p.poll() is not None:
            with open(os.path.join(d, "error.log"), errors="replace") as f:
                sys.stderr.write("fixture_server: nginx exited:\n" + f.read())
            sys.exit(1)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.stderr.write("fixture_server: nginx did not start\n")
                stop()
            time.sleep(0.05)
    print("https://127.0.0.1:%d %s" % (port, cafile), flush=True)
    p.wait()
    stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["http", "hn", "https"], default="http")
    opts = ap.parse_args()
    if opts.mode == "https":
        serve_https()
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        serve_http()


if __name__ == "__main__":
    main()
