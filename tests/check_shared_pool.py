#!/usr/bin/env python3
"""Checks a pool's shared budget (`pools.X.shared: redis://...`) end to end:
real pacer processes, a real redis-server (Debian's, started here on a
loopback port with no persistence), a local HTTP server that notes when
each request arrives.

Usage: check_shared_pool.py --pacer PATH SCENARIO...

  shards     two shards (--shard 1/2, 2/2) share one pool of 40/s (120
             items): together they keep to 40/s (the whole run's average
             within 10%), both make progress all along, and Redis holds the
             key
  fallback   the same two shards at 20/s, redis-server killed mid-run: each
             falls back to its static share (10/s), so together they still
             keep to 20/s, and finish
  down       nothing listens on the port: one warning naming the pool and
             the refused connection, the pool keeps to its own rate, exit 0
  killed     redis-server is killed (SIGKILL) mid-run: one warning, every
             request still made, the pool's own rate afterwards, exit 0
  slow       redis-server is stopped (SIGSTOP) mid-run: the call times out
             (one warning: no answer within 2000 ms), the run goes on at
             the pool's own rate, exit 0; while the pool waits for Redis the
             loop is not blocked (another branch's request goes out on time)
  pause      one pool (no Redis), 10/s: the server answers one request 429
             with Retry-After: 2; no other request of the pool arrives
             during those 2 s (a pool-wide pause), the rest after
  pause_shared  two shards share a pool of 10/s through Redis; one request
             of shard 1 gets 429 with Retry-After: 2: neither shard sends
             during the pause (beyond tokens reserved before it)
  auth       a Redis with a password: the password in the URL or in
             REDISCLI_AUTH is sent with AUTH and works; a wrong one gives
             one warning that quotes Redis's refusal and never the password

Prints "ok SCENARIO" per scenario; exits 1 on failure.
"""
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import scenarios
from scenarios import check

PACER = None
TF = float(os.environ.get("PACER_TIME_FACTOR", "1"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A redis-server of our own on a loopback port, no persistence."""

    def __init__(self, tmp, password=None):
        self.port = free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", tmp]
        if password:
            args += ["--requirepass", password]
        self.password = password
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.call("PING")
                break
            except OSError:
                check(time.monotonic() < deadline and self.proc.poll() is None,
                      "redis-server did not start")
                time.sleep(0.05)

    def call(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            cmds = [args]
            if self.password:
                cmds.insert(0, ("AUTH", self.password))
            out = b""
            for c in cmds:
                out += b"*%d\r\n" % len(c)
                for a in c:
                    a = a.encode()
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            data = b""
            while data.count(b"\r\n") < len(cmds):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace").split("\r\n")[len(cmds) - 1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


class Arrivals:
    """An HTTP server that notes (monotonic time, path) of each request."""

    def __init__(self, throttle=None):
        """throttle: (N, SECS): the Nth request (from 1) answers 429 with
        Retry-After: SECS."""
        self.seen = []
        lock = threading.Lock()
        seen = self.seen

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with lock:
                    seen.append((time.monotonic(), self.path))
                    nth = sum(1 for _, p in seen if p != "/tick")
                if throttle and nth == throttle[0] and self.path != "/tick":
                    self.send_response(429)
                    self.send_header("Retry-After", str(throttle[1]))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"no")
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.base = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def times(self, prefix):
        return sorted(t for t, p in self.seen if p.startswith(prefix))

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


FANOUT = """\
pools:
  api: {{ rate: {rate}/s, shared: "{url}" }}
steps:
  - gather:
      - for_each: ${{{{ range(1, {n}) }}}}
        pool: api
        http: {{ get: "${{{{ env.BASE }}}}/{tag}/${{{{ env.WHO }}}}/${{{{ item }}}}" }}
      - steps:
          - sleep: {tick}
          - http: {{ get: "${{{{ env.BASE }}}}/tick" }}
"""


def workflow(tmp, name, rate, url, n, tag, tick="10ms"):
    path = os.path.join(tmp, name + ".yml")
    with open(path, "w") as f:
        f.write(FANOUT.format(rate=rate, url=url, n=n, tag=tag, tick=tick))
    return path


def start(path, srv, env=None, args=()):
    e = dict(os.environ, BASE=srv.base, WHO="1")
    e.update(env or {})
    return subprocess.Popen([PACER, "run", path, "--progress", "never"] + list(args), env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def warnings(err):
    return [l for l in err.splitlines() if "shared budget" in l]


def max_rate(times, rate):
    """The average rate over the whole span, the first permit aside."""
    check(len(times) >= 2, "too few requests")
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else float("inf")


# ------------------------------------------------------------ scenarios

def two_shards(tmp, redis, srv, rate, name, kill_after=None):
    url = "redis://127.0.0.1:%d/pacer:%s" % (redis.port, name)
    wf = workflow(tmp, name, rate, url, 120, "s")
    ps = [start(wf, srv, {"WHO": str(k)}, ["--shard", "%d/2" % k]) for k in (1, 2)]
    if kill_after:
        deadline = time.monotonic() + 20 * TF
        while len(srv.times("/s/")) < kill_after:
            check(time.monotonic() < deadline, "no progress through Redis")
            time.sleep(0.01)
        redis.proc.kill()
    res = [finish(p) for p in ps]
    for rc, out, err in res:
        check(rc == 0, "a shard failed (%d): %s" % (rc, err))
    a, b = srv.times("/s/1/"), srv.times("/s/2/")
    check(len(a) == 60 and len(b) == 60, "requests seen: %d + %d" % (len(a), len(b)))
    both = sorted(a + b)
    r = max_rate(both, rate)
    check(r <= rate * 1.1, "together %.1f/s, more than %d/s + 10%%" % (r, rate))
    check(r >= rate / (3 * TF), "together only %.1f/s" % r)
    return a, b, [warnings(err) for _, _, err in res]


def sc_shards(tmp):
    redis = Redis(tmp)
    srv = Arrivals()
    try:
        a, b, warned = two_shards(tmp, redis, srv, 40, "shards")
        check(warned == [[], []], "a shard fell back: %s" % warned)
        # Both shards draw on the budget all along, about evenly: neither
        # finishes its 60 before the other has made two thirds of its own.
        check(sum(1 for t in b if t <= a[-1]) >= 40 and sum(1 for t in a if t <= b[-1]) >= 40,
              "the shards did not share the budget as they went")
        check(redis.call("EXISTS", "pacer:shards") == ":1", "no key in Redis")
    finally:
        srv.close()
        redis.stop()


def sc_fallback(tmp):
    redis = Redis(tmp)
    srv = Arrivals()
    try:
        a, b, warned = two_shards(tmp, redis, srv, 20, "fallback", kill_after=20)
        check([len(w) for w in warned] == [1, 1], "expected one warning per shard: %s" % warned)
    finally:
        srv.close()
        redis.stop()


def sc_down(tmp):
    srv = Arrivals()
    try:
        url = "redis://127.0.0.1:%d/pacer:down" % free_port()
        t0 = time.monotonic()
        rc, out, err = finish(start(workflow(tmp, "down", 20, url, 20, "d"), srv))
        check(rc == 0, "exit %d: %s" % (rc, err))
        w = warnings(err)
        check(len(w) == 1, "expected one warning, got: %s" % err)
        check('pool "api"' in w[0] and "refused" in w[0].lower(), "the warning: %s" % w[0])
        check(time.monotonic() - t0 < 10 * TF, "refusal noticed late")
        t = srv.times("/d/")
        check(len(t) == 20, "requests seen: %d" % len(t))
        check(max_rate(t, 20) <= 20 * 1.1, "the pool's own rate not kept: %.1f/s" % max_rate(t, 20))
    finally:
        srv.close()


def midrun(tmp, sig, name):
    redis = Redis(tmp)
    srv = Arrivals()
    try:
        url = "redis://127.0.0.1:%d/pacer:%s" % (redis.port, name)
        p = start(workflow(tmp, name, 20, url, 60, "m", tick="1500ms"), srv)
        deadline = time.monotonic() + 20 * TF
        while len(srv.times("/m/")) < 10:
            check(time.monotonic() < deadline and p.poll() is None, "no progress through Redis")
            time.sleep(0.01)
        t_sig = time.monotonic()
        redis.proc.send_signal(sig)
        rc, out, err = finish(p)
        check(rc == 0, "exit %d: %s" % (rc, err))
        w = warnings(err)
        check(len(w) == 1, "expected one warning, got: %s" % err)
        t = srv.times("/m/")
        check(len(t) == 60, "requests seen: %d" % len(t))
        check(max_rate(t, 20) <= 20 * 1.1, "more than the rate: %.1f/s" % max_rate(t, 20))
        after = [x for x in t if x > t_sig]
        check(len(after) >= 30, "only %d requests after the signal" % len(after))
        return w[0], t_sig, srv.times("/tick")
    finally:
        srv.close()
        redis.stop()


def sc_killed(tmp):
    w, _, _ = midrun(tmp, signal.SIGKILL, "killed")
    check('pool "api"' in w and "own rate" in w, "the warning: %s" % w)


def sc_slow(tmp):
    w, t_stop, tick = midrun(tmp, signal.SIGSTOP, "slow")
    check("no answer within 2000 ms" in w, "the warning: %s" % w)
    # The tick branch sleeps 1.5 s from the start; Redis was stopped after
    # ten permits (about 0.5 s) and the bucket gives up 2 s later: a loop
    # blocked on Redis would send the tick only then.
    check(len(tick) == 1, "no tick")
    check(tick[0] < t_stop + 1.9, "the tick came %.2f s after Redis stopped" % (tick[0] - t_stop))


def sc_auth(tmp):
    pw = "s3cret-pw-4711"
    redis = Redis(tmp, password=pw)
    srv = Arrivals()
    try:
        ok_url = "redis://:%s@127.0.0.1:%d/pacer:auth1" % (pw, redis.port)
        rc, out, err = finish(start(workflow(tmp, "a1", 50, ok_url, 5, "a1"), srv))
        check(rc == 0 and not warnings(err), "with the password in the URL: %s" % err)
        check(redis.call("EXISTS", "pacer:auth1") == ":1", "no key in Redis")
        check(pw not in out + err, "the password shows")

        env_url = "redis://127.0.0.1:%d/pacer:auth2" % redis.port
        rc, out, err = finish(start(workflow(tmp, "a2", 50, env_url, 5, "a2"), srv,
                                    {"REDISCLI_AUTH": pw}))
        check(rc == 0 and not warnings(err), "with REDISCLI_AUTH: %s" % err)
        check(redis.call("EXISTS", "pacer:auth2") == ":1", "no key in Redis (REDISCLI_AUTH)")

        bad = "wrong-pw-0815"
        bad_url = "redis://default:%s@127.0.0.1:%d/pacer:auth3" % (bad, redis.port)
        rc, out, err = finish(start(workflow(tmp, "a3", 50, bad_url, 5, "a3"), srv))
        check(rc == 0, "a refused AUTH failed the run: %s" % err)
        w = warnings(err)
        check(len(w) == 1 and "AUTH" in w[0], "expected one AUTH warning: %s" % err)
        check(bad not in out + err, "the wrong password shows: %s" % err)
        check(len(srv.times("/a3/")) == 5, "the fallback did not run every request")
    finally:
        srv.close()
        redis.stop()


PAUSE = """\
pools:
  api: {{ rate: 10/s{shared} }}
steps:
  - for_each: ${{{{ range(1, {n}) }}}}
    pool: api
    http: {{ get: "${{{{ env.BASE }}}}/p/${{{{ env.WHO }}}}/${{{{ item }}}}" }}
    expect: {{ status: [200, 429] }}
"""


def pause_window(srv, secs):
    """The 429's arrival, and the requests that came during its pause (the
    first 0.6 s aside: requests sent before the answer came back, and
    tokens a shard had reserved from Redis)."""
    t = sorted(srv.seen)
    t429 = t[srv.throttle_n - 1][0]
    during = [x for x, _ in t if t429 + 0.6 * TF < x < t429 + srv.throttle_s - 0.1]
    after = [x for x, _ in t if x >= t429 + srv.throttle_s - 0.1]
    return t429, during, after


def sc_pause(tmp):
    srv = Arrivals(throttle=(4, 2))
    srv.throttle_n, srv.throttle_s = 4, 2
    try:
        path = os.path.join(tmp, "pause.yml")
        with open(path, "w") as f:
            f.write(PAUSE.format(shared="", n=12))
        rc, out, err = finish(start(path, srv, args=["-v"]))
        check(rc == 0, "exit %d: %s" % (rc, err))
        check(len(srv.seen) == 12, "requests seen: %d" % len(srv.seen))
        t429, during, after = pause_window(srv, 2)
        check(not during, "%d requests during the pause" % len(during))
        check(len(after) >= 7, "only %d requests after the pause" % len(after))
        lines = [l for l in err.splitlines() if 'pool "api" paused for 2s' in l]
        check(len(lines) == 1 and "HTTP 429" in lines[0], "expected one pause line: %s" % err)
    finally:
        srv.close()


def sc_pause_shared(tmp):
    redis = Redis(tmp)
    srv = Arrivals(throttle=(8, 2))
    srv.throttle_n, srv.throttle_s = 8, 2
    try:
        url = "redis://127.0.0.1:%d/pacer:pause" % redis.port
        path = os.path.join(tmp, "pause_shared.yml")
        with open(path, "w") as f:
            f.write(PAUSE.format(shared=', shared: "%s"' % url, n=40))
        ps = [start(path, srv, {"WHO": str(k)}, ["--shard", "%d/2" % k, "-v"]) for k in (1, 2)]
        res = [finish(p) for p in ps]
        for rc, out, err in res:
            check(rc == 0, "a shard failed (%d): %s" % (rc, err))
            check(not warnings(err), "a shard fell back: %s" % err)
        check(len(srv.seen) == 40, "requests seen: %d" % len(srv.seen))
        t429, during, after = pause_window(srv, 2)
        check(not during, "%d requests during the pause" % len(during))
        paused = [k for k, (_, _, err) in enumerate(res, 1) if "every shard sharing" in err]
        check(len(paused) == 1, "expected one shard to log the pause: %s" % paused)
        other = "/p/%d/" % (3 - paused[0])
        check(any(x >= t429 + 1.9 for x, p in srv.seen if p.startswith(other)),
              "the other shard sent nothing after the pause")
    finally:
        srv.close()
        redis.stop()


SCENARIOS = {"pause": sc_pause, "pause_shared": sc_pause_shared, "shards": sc_shards, "fallback": sc_fallback, "down": sc_down, "killed": sc_killed, "slow": sc_slow,
             "auth": sc_auth}


def main():
    return scenarios.main(SCENARIOS, "pacer-shared-pool-", globals())


if __name__ == "__main__":
    sys.exit(main())
