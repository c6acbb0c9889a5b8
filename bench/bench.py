#!/usr/bin/env python3
"""pacer against its peers: the harness behind scripts/bench (issue 6).

Starts nginx on 127.0.0.1 (HTTP/1.1, and HTTPS with HTTP/2 on a self-signed
certificate made for the run, plus a 50 ms latency endpoint), then runs each
workload with pacer and with its peers, alternating the tools from one round
to the next, and takes the median of each figure over the rounds:

  1. N GETs of small JSON documents at concurrency 50, bodies checked as JSON
     (pacer, asyncio+aiohttp, curl --parallel; wrk as the ceiling)
  2. the same over HTTPS with HTTP/2
  3. 1 000 GETs against 50 ms of server latency at concurrency 50
  4. 100 000 gathered 1 s sleeps (pacer, asyncio)
  5. start-up: a one-step workflow against python3 -c with asyncio

and the workflows people actually write (issue 16), with Step CI and
Artillery as further peers when bench/node_modules has them:

  6. 20 000 GETs with no concurrency limit (aiohttp gather, no semaphore)
  7. the same at 1 000 / 10 000 / 100 000: CPU time against N
  8-10. 10 000 / 50 000 / 100 000 GETs with expect.that and every result
     read afterwards by a later step; memory per retained result
  11-12. 1 000 / 5 000 GETs at once against 100 ms of latency, with the
     default connection cap and with max_connections: 0
  13. the price of expect.that (CPU time, and callgrind instructions)
  14. 1 000 000 gathered sleeps
  15. start-up, with the npm peers

Each run is one child process; its wall time is measured around fork/exec
and wait, its CPU time (user+sys) and peak RSS come from wait4's rusage, and
the connections it opened are counted from nginx's access log ($connection).
Every run is checked for correctness (exit status, and nginx saw the
expected number of requests with status 200 over the expected protocol).

The results go to bench/results/ (results.json and chart.svg for 1-5,
results-16.json and chart-16.svg for 6-15) and, with --write-doc, into
docs/BENCHMARKS.md, each group between its own markers (bench:begin/end,
bench16:begin/end); a run writes only the groups it ran.
--smoke runs every tool once on a few hundred requests, for correctness
only (CI), and makes no timing claims.

Everything runs on loopback, with bounded request counts and durations, in a
temporary directory; nginx and the helper servers are stopped on exit,
including on SIGINT/SIGTERM.
"""
import argparse
import collections
import copy
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONCURRENCY = 50
DELAY_S = 0.05
SLOW_S = 0.1          # the /slow/ endpoint of workloads 11 and 12
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_output(argv):
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"


# ------------------------------------------------------------------ running


class RunError(Exception):
    pass


def run_measured(argv, *, stdout_path=None, stderr_path, timeout, cwd=None, env=None):
    """Runs argv as one child in its own process group; returns wall time,
    CPU time and peak RSS. A child still running after `timeout` seconds is
    killed with its group (and the run reported as failed)."""
    # A child's peak RSS starts at the RSS of the process that forked it
    # (Linux keeps the high-water mark across execve), so a child forked
    # from this Python process could never report less than ~17 MiB. GNU
    # time, a small C program, forks the child instead and reports the
    # child's own peak; wall and CPU time still come from wait4 here (GNU
    # time's own share of them is well under a millisecond).
    rss_path = stderr_path + ".rss"
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", rss_path, *argv]
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb")
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             cwd=cwd, start_new_session=True,
                             env=child_env(env))
        killed = []

        def kill():
            killed.append(True)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            # Interrupted (SIGINT/SIGTERM): the child must not outlive us.
            kill()
            os.wait4(p.pid, 0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdout_path:
            out.close()
        err.close()
    rss_kb = ru.ru_maxrss
    if GNU_TIME:
        try:
            with open(rss_path) as f:
                rss_kb = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
    return {
        "wall": wall,
        "cpu": ru.ru_utime + ru.ru_stime,
        "user": ru.ru_utime,
        "sys": ru.ru_stime,
        "rss_kb": rss_kb,
        "rc": p.returncode,
        "timed_out": bool(killed),
    }


def child_env(extra):
    """os.environ with `extra` applied (a None value removes the name)."""
    if not extra:
        return None
    env = dict(os.environ)
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ------------------------------------------------------------------ servers


class Servers:
    """nginx (and, without the echo module, the Python delay server) in a
    temporary directory. stop() is idempotent."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.nginx = None
        self.delay = None
        self.http_port = free_port()
        self.https_port = free_port()
        self.delay_mode = None
        self.cert = os.path.join(tmp, "cert.pem")
        self.log_path = os.path.join(tmp, "access.log")

    def start(self):
        os.makedirs(os.path.join(self.tmp, "tmp"), exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-keyout", os.path.join(self.tmp, "key.pem"), "-out", self.cert,
             "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        echo = find_echo_module()
        doc = ('{"id":$1,"type":"story","by":"bench","title":"Fixture item $1","score":42,'
               '"descendants":3,"kids":[101,102,103],"url":"http://127.0.0.1/item/$1"}')
        if echo:
            self.delay_mode = "nginx echo module: echo_sleep 0.05"
            delay = (f"            echo_sleep {DELAY_S};\n"
                     f"            echo '{doc}';")
            slow = (f"            echo_sleep {SLOW_S};\n"
                    f"            echo '{doc}';")
            load = f"load_module {echo};"
        else:
            port = free_port()
            self.delay_mode = f"bench/delay_server.py (asyncio) behind nginx, {DELAY_S}s"
            self.delay = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "delay_server.py"), str(port), str(DELAY_S),
                 str(SLOW_S)],
                stdin=subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent)
            wait_port(port, self.delay, "the delay server")
            delay = (f"            proxy_pass http://127.0.0.1:{port};\n"
                     "            proxy_http_version 1.1;\n"
                     "            proxy_set_header Connection \"\";")
            slow = delay
            load = ""
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        conf = (conf.replace("@LOAD_ECHO@", load)
                .replace("@USER@", "user root root;" if os.geteuid() == 0 else "")
                .replace("@DIR@", self.tmp)
                .replace("@HTTP_PORT@", str(self.http_port))
                .replace("@HTTPS_PORT@", str(self.https_port))
                .replace("@DELAY@", delay)
                .replace("@SLOW@", slow))
        conf_path = os.path.join(self.tmp, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.nginx = subprocess.Popen(
            [nginx_binary(), "-p", self.tmp, "-c", conf_path, "-e", os.path.join(self.tmp, "error.log")],
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                raise RunError("nginx exited at start:\n" + tail(os.path.join(self.tmp, "error.log")))
            try:
                with socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2):
                    pass
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RunError("nginx did not start listening within 10 s")

    def url(self, tls=False):
        return (f"https://127.0.0.1:{self.https_port}" if tls
                else f"http://127.0.0.1:{self.http_port}")

    def log_offset(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset, expect=None):
        """The access-log lines written since offset, as (connection,
        status, protocol). With `expect`, waits (up to 2 s) for nginx to
        finish logging that many requests."""
        deadline = time.monotonic() + 2
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                data = f.read()
            lines = data.decode(errors="replace").splitlines()
            if expect is None or len(lines) >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        rows = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 4:
                rows.append((parts[0], parts[2], parts[3]))
        return rows

    def stop(self):
        for p in (self.nginx, self.delay):
            if p is None or p.poll() is not None:
                continue
            try:
                if p is self.delay:
                    p.stdin.close()
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired, OSError):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=5)
                except (ProcessLookupError, OSError, subprocess.TimeoutExpired):
                    pass
        self.nginx = self.delay = None


def wait_port(port, proc, what, secs=10):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"{what} exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RunError(f"{what} did not listen on port {port} within {secs} s")


def die_with_parent():
    """preexec_fn for the servers: SIGTERM when the harness dies, even by
    SIGKILL (Linux prctl PR_SET_PDEATHSIG), so nothing outlives a run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def nginx_binary():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def find_echo_module():
    if os.environ.get("PACER_BENCH_NO_ECHO"):  # to test the fallback
        return None
    for d in ("/usr/lib/nginx/modules", "/usr/share/nginx/modules"):
        p = os.path.join(d, "ngx_http_echo_module.so")
        if os.path.exists(p):
            return p
    return None


# ------------------------------------------------------------------ tools


class Tool:
    """One contender in one workload: how to run it, and how to check that
    a run did the work."""

    def __init__(self, name, argv, *, http=None, n=0, proto=None, stdout=False,
                 check_stdout=None, wrk=False, note="", env=None, ideal=None, size=None):
        self.name = name
        self.env = env            # extra environment (the npm peers)
        self.ideal = ideal        # this tool's ideal wall time, where it has its own
        self.size = size          # the N of this run, where a workload varies it
        self.argv = argv
        self.http = http          # Servers when the tool talks to nginx
        self.n = n                # requests nginx must see (0: not checked)
        self.proto = proto        # protocol nginx must log, e.g. "HTTP/2.0"
        self.stdout = stdout
        self.check_stdout = check_stdout
        self.wrk = wrk            # duration-based: figures scaled to n requests
        self.note = note


def run_tool(tool, tmp, timeout):
    stdout_path = os.path.join(tmp, "stdout.txt") if tool.stdout else None
    stderr_path = os.path.join(tmp, f"stderr-{re.sub(r'[^a-z0-9]+', '_', tool.name)}.txt")
    offset = tool.http.log_offset() if tool.http else 0
    r = run_measured(tool.argv, stdout_path=stdout_path, stderr_path=stderr_path,
                     timeout=timeout, cwd=tmp, env=tool.env)
    problems = []
    if r["timed_out"]:
        problems.append(f"killed after {timeout} s")
    if r["rc"] != 0:
        problems.append(f"exit status {r['rc']}")
    if tool.http:
        rows = tool.http.log_since(offset, expect=None if tool.wrk else tool.n)
        conns = {c for c, _, _ in rows}
        bad = [s for _, s, _ in rows if s != "200"]
        protos = sorted({p for _, _, p in rows})
        r["requests"] = len(rows)
        r["connections"] = len(conns)
        r["protocols"] = protos
        if bad:
            problems.append(f"{len(bad)} responses with status other than 200")
        if not tool.wrk and len(rows) != tool.n:
            problems.append(f"nginx saw {len(rows)} requests, expected {tool.n}")
        if tool.proto and protos != [tool.proto]:
            problems.append(f"protocol {protos}, expected {tool.proto}")
    if tool.wrk:
        with open(stdout_path, errors="replace") as f:
            text = f.read()
        m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
        if not m:
            problems.append("could not read wrk's output")
        else:
            total = int(m.group(1))
            secs = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
            r["wrk_requests"] = total
            r["wrk_rps"] = total / secs
            # Figures for the same n requests as the other tools.
            scale = tool.n / total
            r["wall"] = secs * scale
            r["cpu"] *= scale
            r["user"] *= scale
            r["sys"] *= scale
            lat = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
            if lat:
                v = float(lat.group(1))
                r["wrk_p50_ms"] = v / 1000 if lat.group(2) == "us" else v * (1000 if lat.group(2) == "s" else 1)
            if re.search(r"Non-2xx|Socket errors", text):
                problems.append("wrk reported errors: " + " ".join(
                    l.strip() for l in text.splitlines() if "Non-2xx" in l or "Socket errors" in l))
    elif tool.check_stdout and stdout_path:
        with open(stdout_path, errors="replace") as f:
            msg = tool.check_stdout(f.read())
        if msg:
            problems.append(msg)
    if tool.wrk:
        # wrk stops with requests in flight; let nginx finish (and log)
        # them before the next run counts its own.
        time.sleep(0.3)
    if problems:
        raise RunError(f"{tool.name}: " + "; ".join(problems) + "\n" + tail(stderr_path))
    return r


def curl_config(path, urls):
    with open(path, "w") as f:
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\n')


def curl_codes_checker(n):
    def check(text):
        codes = text.split()
        ok = sum(1 for c in codes if c == "200")
        return None if ok == n and len(codes) == n else f"curl: {ok} of {n} transfers had status 200"
    return check


# ------------------------------------------------------------------ workloads


def build_workloads(a, srv, tmp):
    pacer = os.path.abspath(a.pacer)
    py = a.python
    wl = []
    runner = ["-q", "--progress", "never"]

    def http_tools(prefix, n, tls, wrk_secs, workflow):
        base = srv.url(tls)
        urls = [f"{base}{prefix}{i}.json" for i in range(1, n + 1)]
        cfg = os.path.join(tmp, f"curl{prefix.replace('/', '_')}{'s' if tls else ''}.cfg")
        curl_config(cfg, urls)
        proto = "HTTP/2.0" if tls else "HTTP/1.1"
        tls_args = ["--cacert", srv.cert, "--http2"] if tls else []
        tools = [
            Tool("pacer", [pacer, "run", os.path.join(HERE, workflow), "--var", f"base={base}",
                           "--var", f"n={n}", *(["--var", f"ca={srv.cert}"] if tls else []), *runner],
                 http=srv, n=n, proto=proto),
            Tool("curl --parallel", ["curl", "-s", "-S", "--no-progress-meter", "--parallel", "--parallel-max", str(CONCURRENCY),
                                     *tls_args, "-w", "%{http_code}\\n", "-K", cfg],
                 http=srv, n=n, proto=proto, stdout=True, check_stdout=curl_codes_checker(n),
                 note="bodies not parsed"),
            Tool("asyncio+aiohttp", [py, os.path.join(HERE, "peer_aiohttp.py"), base, prefix, str(n),
                                     str(CONCURRENCY), *([srv.cert] if tls else [])],
                 http=srv, n=n, proto="HTTP/1.1",
                 note="HTTP/1.1: aiohttp has no HTTP/2" if tls else ""),
        ]
        if a.wrk and shutil.which("wrk"):
            tools.append(Tool("wrk (ceiling)", ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{wrk_secs}s",
                                                "--latency", f"{base}{prefix}1.json"],
                              http=srv, n=n, stdout=True, wrk=True,
                              note=("HTTP/1.1 (wrk has no HTTP/2); " if tls else "")
                              + f"{wrk_secs} s run scaled to {n} requests; bodies not parsed"))
        return tools

    n1 = a.requests
    wl.append({"id": "w1", "title": f"{n1:,} GETs, small JSON, concurrency {CONCURRENCY}, HTTP/1.1",
               "tools": http_tools("/item/", n1, False, 3, "w1_http.yml"), "timeout": 300})
    wl.append({"id": "w2", "title": f"{n1:,} GETs, small JSON, concurrency {CONCURRENCY}, HTTPS + HTTP/2",
               "tools": http_tools("/item/", n1, True, 3, "w2_https.yml"), "timeout": 300})
    n3 = a.latency_requests
    wl.append({"id": "w3", "title": f"{n3:,} GETs, 50 ms server latency, concurrency {CONCURRENCY}",
               "tools": http_tools("/delay/", n3, False, 3, "w3_latency.yml"), "timeout": 120,
               "ideal": n3 / CONCURRENCY * DELAY_S})
    n4 = a.sleeps
    wl.append({"id": "w4", "title": f"{n4:,} gathered 1 s sleeps",
               "tools": [
                   Tool("pacer", [pacer, "run", os.path.join(HERE, "w4_sleep.yml"), "--var", f"n={n4}", *runner]),
                   Tool("asyncio", [py, os.path.join(HERE, "peer_sleep.py"), str(n4), "1"]),
               ], "timeout": 300, "ideal": 1.0})
    wl.append({"id": "w5", "title": "start-up: one-step workflow",
               "tools": [
                   Tool("pacer", [pacer, "run", os.path.join(HERE, "w5_startup.yml"), *runner]),
                   Tool("python3 -c asyncio", [py, "-c", "import asyncio; asyncio.run(asyncio.sleep(0))"]),
               ], "timeout": 60, "startup": True})
    wl.extend(build_workloads_16(a, srv, tmp))
    if a.baseline:
        # The binary before a change, as a tool of its own beside each
        # pacer variant: "pacer@base", "pacer@base, expect.that", ... It
        # runs in the same rounds, so the ratio of the two is taken under
        # the same load (and w13's callgrind pass counts it too).
        base_bin = os.path.abspath(a.baseline)
        for w in wl:
            extra = []
            for t in w["tools"]:
                if t.name.startswith("pacer") and t.argv[0] == pacer:
                    b = copy.copy(t)
                    b.name = "pacer@base" + t.name[len("pacer"):]
                    b.argv = [base_bin, *t.argv[1:]]
                    extra.append(b)
            w["tools"].extend(extra)
    if a.only:
        wl = [w for w in wl if w["id"] in a.only]
    if a.tool:
        for w in wl:
            w["tools"] = [t for t in w["tools"] if any(t.name.startswith(x) for x in a.tool)]
        wl = [w for w in wl if w["tools"]]
    return wl


# ------------------------------------------------------------------ issue 16: the npm peers

NODE_BIN = os.path.join(HERE, "node_modules", ".bin")
NPM_PEERS = {"stepci": "Step CI", "artillery": "Artillery"}


def npm_peers(a):
    """{"stepci": path, "artillery": path} for the npm peers installed in
    bench/node_modules (scripts/bench installs them for a full run; the
    smoke run only uses what is already there)."""
    if not a.npm_peers:
        return {}
    out = {}
    for exe in NPM_PEERS:
        p = os.path.join(NODE_BIN, exe)
        if os.access(p, os.X_OK):
            out[exe] = p
    return out


def npm_env(tmp):
    """The environment of an npm peer's run: its documented telemetry
    switches off (posthog-node itself is a no-op stub, bench/stubs/), a
    HOME of its own in the temporary directory (both write config files
    there), no proxy (Step CI's ProxyAgent reads the *_PROXY variables)."""
    home = os.path.join(tmp, "npm-home")
    os.makedirs(home, exist_ok=True)
    env = {"STEPCI_DISABLE_ANALYTICS": "1", "ARTILLERY_DISABLE_TELEMETRY": "true",
           "HOME": home, "XDG_CONFIG_HOME": os.path.join(home, ".config"),
           "NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1", "FORCE_COLOR": "0", "NODE_OPTIONS": None}
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[k] = None
    return env


def stepci_workflow(path, base, prefix, n, concurrency=None):
    """A Step CI workflow doing what the pacer fan-out does: one test per
    item (Step CI has no loop), each one GET whose status and JSON id are
    checked; `config.concurrency` bounds the tests in flight (without it,
    every test runs at once). Written as JSON, which is YAML."""
    tests = {f"t{i}": {"steps": [{"http": {
        "url": f"{base}{prefix}{i}.json", "method": "GET",
        "check": {"status": 200, "jsonpath": {"$.id": i}}}}]} for i in range(1, n + 1)}
    wf = {"version": "1.1", "name": "bench", "tests": tests}
    if concurrency:
        wf["config"] = {"concurrency": concurrency}
    with open(path, "w") as f:
        json.dump(wf, f)


def stepci_checker(n):
    def check(text):
        m = re.search(r"Tests: (\d+) failed, (\d+) passed, (\d+) total", text)
        if not m or m.group(1) != "0" or int(m.group(2)) != n:
            # Each failed step is reported as "⚠︎ test › step", a blank
            # line, then the error: count the errors.
            errs = collections.Counter(re.findall(r"⚠︎[^\n]*\n\n([^\n]+)", text))
            return (f"Step CI: {m.group(0) if m else 'no summary'}"
                    + ("; errors: " + ", ".join(f"{e} ({c})" for e, c in errs.most_common(3)) if errs else ""))
        return None
    return check


def artillery_phase(n):
    """The shortest phase over which Artillery creates exactly n arrivals.
    Its uniform arrival process ticks every floor(phase / n) microseconds
    and stops after floor(phase / tick) ticks, so a phase of 10 ms gives 303
    users for 300; 100 ms is exact for the counts the harness uses, and
    1 s is kept for any other."""
    tick = 100_000 // n
    return "100ms" if tick and 100_000 // tick == n else "1s"


def artillery_script(path, base, prefix, n, concurrency=None, phase="1s"):
    """An Artillery script for the same work. With a concurrency C: C
    virtual users arrive at once and each loops N/C GETs over its own
    kept-alive connection (Artillery's model of "C at a time"). Without:
    one virtual user per request, all N arriving within `phase` (the
    arrivals are spread evenly over it), each on a connection of its own.
    Each response's status and JSON id are checked by the expect plugin."""
    get = {"capture": {"json": "$.id", "as": "id"},
           "expect": [{"statusCode": 200}]}
    if concurrency:
        if n % concurrency:
            raise RunError(f"artillery: {n} requests do not divide among {concurrency} users")
        get["url"] = prefix + "{{ $loopCount }}.json"
        get["expect"].append({"equals": ["{{ id }}", "{{ $loopCount }}"]})
        flow = [{"loop": [{"get": get}], "count": n // concurrency}]
        arrivals = concurrency
    else:
        get["url"] = prefix + "1.json"
        get["expect"].append({"equals": ["{{ id }}", "1"]})
        flow = [{"get": get}]
        arrivals = n
    script = {"config": {"target": base, "phases": [{"duration": phase, "arrivalCount": arrivals}],
                         "http": {"timeout": 120},
                         "plugins": {"expect": {"outputFormat": "silent"}}},
              "scenarios": [{"flow": flow}]}
    with open(path, "w") as f:
        json.dump(script, f)


def artillery_checker(n):
    def check(text):
        rep = text.rsplit("Summary report", 1)
        if len(rep) != 2:
            return "Artillery: no summary report"
        rep = rep[1]

        def counter(name):
            m = re.search(r"^" + re.escape(name) + r":\s*\.*\s*(\d+)", rep, re.M)
            return int(m.group(1)) if m else 0
        problems = []
        if counter("http.codes.200") != n:
            problems.append(f"{counter('http.codes.200')} of {n} responses with status 200")
        if counter("vusers.failed"):
            problems.append(f"{counter('vusers.failed')} virtual users failed")
        if counter("plugins.expect.failed"):
            problems.append(f"{counter('plugins.expect.failed')} failed expectations")
        errs = re.findall(r"^(errors\.\S+):\s*\.*\s*(\d+)", rep, re.M)
        if errs:
            problems.append(", ".join(f"{k} {v}" for k, v in errs))
        return ("Artillery: " + "; ".join(problems)) if problems else None
    return check


# ------------------------------------------------------------------ issue 16: workloads


def build_workloads_16(a, srv, tmp):
    """Workloads 6-15: the workflows people actually write (issue 16)."""
    pacer = os.path.abspath(a.pacer)
    py = a.python
    runner = ["-q", "--progress", "never"]
    base = srv.url()
    peers = npm_peers(a)
    env = npm_env(tmp)
    wl = []

    def pacer_tool(name, workflow, n, *, prefix="/item/", ideal=None, size=None, note=""):
        return Tool(name, [pacer, "run", os.path.join(HERE, workflow), "--var", f"base={base}",
                           "--var", f"n={n}", *runner],
                    http=srv, n=n, proto="HTTP/1.1", ideal=ideal, size=size, note=note)

    def aiohttp_tool(name, prefix, n, conc, *extra, ideal=None, size=None, note=""):
        return Tool(name, [py, os.path.join(HERE, "peer_aiohttp.py"), base, prefix, str(n), str(conc),
                           *extra], http=srv, n=n, proto="HTTP/1.1", ideal=ideal, size=size, note=note)

    def curl_tool(prefix, n, parallel, note, ideal=None):
        cfg = os.path.join(tmp, f"curl{prefix.replace('/', '_')}{n}.cfg")
        if not os.path.exists(cfg):
            curl_config(cfg, [f"{base}{prefix}{i}.json" for i in range(1, n + 1)])
        return Tool(f"curl --parallel-max {parallel}",
                    ["curl", "-s", "-S", "--no-progress-meter", "--parallel", "--parallel-max", str(parallel),
                     "-w", "%{http_code}\\n", "-K", cfg],
                    http=srv, n=n, proto="HTTP/1.1", stdout=True, check_stdout=curl_codes_checker(n),
                    note=note, ideal=ideal)

    def stepci_tool(tag, prefix, n, conc=None, ideal=None, note=""):
        path = os.path.join(tmp, f"stepci-{tag}.yml")
        stepci_workflow(path, base, prefix, n, conc)
        return Tool("Step CI", [peers["stepci"], "run", path], http=srv, n=n, proto="HTTP/1.1",
                    stdout=True, check_stdout=stepci_checker(n), env=env, ideal=ideal,
                    note="one connection per request (a new agent each); " + note)

    def artillery_tool(tag, prefix, n, conc=None, phase="1s", ideal=None, note=""):
        path = os.path.join(tmp, f"artillery-{tag}.json")
        artillery_script(path, base, prefix, n, conc, phase)
        return Tool("Artillery", [peers["artillery"], "run", path], http=srv, n=n, proto="HTTP/1.1",
                    stdout=True, check_stdout=artillery_checker(n), env=env, ideal=ideal, note=note)

    # w6: no concurrency limit.
    n6 = a.unlimited_requests
    tools = [pacer_tool("pacer", "w6_unlimited.yml", n6, note="no `concurrency`; connection cap 100 (default)"),
             aiohttp_tool("asyncio+aiohttp", "/item/", n6, 0,
                          note="gather, no semaphore; connector limit 100 (default)"),
             curl_tool("/item/", n6, 100, "curl queues the transfers itself; bodies not parsed")]
    if "stepci" in peers:
        tools.append(stepci_tool("w6", "/item/", n6, note="no `config.concurrency`: every test at once"))
    if "artillery" in peers:
        ph = artillery_phase(n6)
        tools.append(artillery_tool("w6", "/item/", n6, phase=ph,
                                    note=f"one virtual user (and connection) per request, all arriving within {ph}"))
    wl.append({"id": "w6", "title": f"{n6:,} GETs, no concurrency limit (every request handed over at once)",
               "tools": tools, "timeout": 600, "rounds": min(a.runs, 3)})

    # w7: CPU against N without a limit.
    tools = []
    for n in a.growth_sizes:
        tools.append(pacer_tool(f"pacer N={n:,}", "w6_unlimited.yml", n, size=n))
        tools.append(aiohttp_tool(f"asyncio+aiohttp N={n:,}", "/item/", n, 0, size=n))
    wl.append({"id": "w7", "title": "CPU against N with no concurrency limit: "
               + ", ".join(f"{n:,}" for n in a.growth_sizes) + " GETs",
               # pacer's CPU grows faster than N here (issue 16): a size it
               # cannot finish within the timeout is recorded as such.
               "tools": tools, "timeout": a.growth_timeout, "rounds": min(a.runs, 2), "may_fail": True})

    # w8-w10: expect.that and the results read afterwards.
    for wid, n in zip(("w8", "w9", "w10"), a.read_sizes):
        tools = [pacer_tool("pacer", "w8_read.yml", n, size=n,
                            note="expect.that; every result kept and read by a later `lua:` step"),
                 aiohttp_tool("asyncio+aiohttp", "/item/", n, CONCURRENCY, "--read", size=n,
                              note="every decoded dict kept, read after the gather"),
                 curl_tool("/item/", n, CONCURRENCY, "bodies neither parsed nor kept")]
        tools[-1].size = n
        if "stepci" in peers and n <= a.npm_max_requests:
            t = stepci_tool(wid, "/item/", n, CONCURRENCY, note="keeps every result for its report")
            t.size = n
            tools.append(t)
        if "artillery" in peers and n <= a.npm_max_requests:
            t = artillery_tool(wid, "/item/", n, CONCURRENCY,
                               note=f"{CONCURRENCY} virtual users looping; keeps no result to read")
            t.size = n
            tools.append(t)
        wl.append({"id": wid, "title": f"{n:,} GETs, concurrency {CONCURRENCY}, expect.that, results read afterwards",
                   "tools": tools, "timeout": 900, "read": True, "rounds": min(a.runs, 3)})

    # w11, w12: thousands at once against 100 ms of latency.
    for wid, n in zip(("w11", "w12"), a.wide_sizes):
        capped = -(-n // 100) * SLOW_S
        tools = [pacer_tool("pacer (cap 100)", "w11_latency.yml", n, ideal=capped,
                            note="default max_connections: 100"),
                 pacer_tool("pacer (max_connections: 0)", "w11_latency_nocap.yml", n, ideal=SLOW_S),
                 aiohttp_tool("asyncio+aiohttp (limit 100)", "/slow/", n, 0, ideal=capped,
                              note="connector's default limit"),
                 aiohttp_tool("asyncio+aiohttp (limit 0)", "/slow/", n, 0, "--limit", "0", ideal=SLOW_S),
                 curl_tool("/slow/", n, 300, "300 is curl's maximum; bodies not parsed",
                           ideal=-(-n // 300) * SLOW_S)]
        if "stepci" in peers:
            tools.append(stepci_tool(wid, "/slow/", n, ideal=SLOW_S, note="every test at once"))
        if "artillery" in peers:
            ph = artillery_phase(n)
            tools.append(artillery_tool(wid, "/slow/", n, phase=ph, ideal=SLOW_S + (0.1 if ph == "100ms" else 1.0),
                                        note=f"one virtual user per request, arriving within {ph} "
                                        "(ideal: the phase + 100 ms)"))
        wl.append({"id": wid, "title": f"{n:,} concurrent GETs, {SLOW_S * 1000:.0f} ms server latency",
                   "tools": tools, "timeout": 300, "rounds": a.runs if n <= 1000 else min(a.runs, 3)})

    # w13: the price of expect.that.
    n13 = a.requests
    wl.append({"id": "w13", "title": f"{n13:,} GETs at concurrency {CONCURRENCY}: with and without expect.that",
               "tools": [pacer_tool("pacer, expect.that", "w1_http.yml", n13,
                                    note="`result.json.id == item` (workload 1)"),
                         pacer_tool("pacer, no expect.that", "w13_noexpect.yml", n13,
                                    note="status checked (the default), nothing else")],
               "timeout": 300, "callgrind": a.callgrind_requests})

    # w14: a million gathered sleeps.
    n14 = a.many_sleeps
    wl.append({"id": "w14", "title": f"{n14:,} gathered 1 s sleeps",
               "tools": [Tool("pacer", [pacer, "run", os.path.join(HERE, "w4_sleep.yml"), "--var", f"n={n14}",
                                        *runner]),
                         Tool("asyncio", [py, os.path.join(HERE, "peer_sleep.py"), str(n14), "1"])],
               "timeout": 600, "ideal": 1.0, "rounds": min(a.runs, 3)})

    # w15: start-up, with the npm peers.
    tools = [Tool("pacer", [pacer, "run", os.path.join(HERE, "w5_startup.yml"), *runner]),
             Tool("python3 -c asyncio", [py, "-c", "import asyncio; asyncio.run(asyncio.sleep(0))"])]
    if "stepci" in peers:
        path = os.path.join(tmp, "stepci-w15.yml")
        with open(path, "w") as f:
            json.dump({"version": "1.1", "name": "startup", "tests": {"t": {"steps": [{"delay": "0ms"}]}}}, f)
        tools.append(Tool("Step CI", [peers["stepci"], "run", path], env=env, stdout=True,
                          check_stdout=lambda text: None if "1 passed" in text else "Step CI: test not passed",
                          note="one test, one `delay: 0ms` step"))
    if "artillery" in peers:
        path = os.path.join(tmp, "artillery-w15.json")
        with open(path, "w") as f:
            json.dump({"config": {"target": base, "phases": [{"duration": "1ms", "arrivalCount": 1}]},
                       "scenarios": [{"flow": [{"think": 0}]}]}, f)
        tools.append(Tool("Artillery", [peers["artillery"], "run", path], env=env, stdout=True,
                          check_stdout=lambda text: None if re.search(r"vusers\.completed:\s*\.*\s*1\b", text)
                          else "Artillery: the virtual user did not complete",
                          note="one virtual user, `think: 0`"))
    wl.append({"id": "w15", "title": "start-up: one-step workflow, with the npm peers",
               "tools": tools, "timeout": 120, "startup": True, "rounds": a.startup_runs_16})
    return wl


def run_workloads(a, wls, tmp):
    results = {}
    for w in wls:
        rounds = w.get("rounds") or (a.startup_runs if w.get("startup") else a.runs)
        log(f"{w['id']}: {w['title']} ({rounds} rounds, {len(w['tools'])} tools)")
        runs = {t.name: [] for t in w["tools"]}
        failed = {}
        for k in range(rounds):
            # Alternate: each round starts with a different tool.
            order = w["tools"][k % len(w["tools"]):] + w["tools"][:k % len(w["tools"])]
            for t in order:
                if t.name in failed:
                    continue
                try:
                    r = run_tool(t, tmp, w["timeout"])
                except RunError as e:
                    # In a full run a peer that cannot do the workload is
                    # a result (shown as such), not the end of the run;
                    # pacer failing, or anything failing in the smoke
                    # run, is.
                    if a.smoke or (t.name.startswith("pacer") and not w.get("may_fail")):
                        raise
                    failed[t.name] = str(e).split("\n")[0][:600]
                    log(f"  {w['id']} round {k + 1} {t.name}: FAILED: {failed[t.name]}")
                    continue
                runs[t.name].append(r)
                if not a.smoke and not w.get("startup"):
                    log(f"  {w['id']} round {k + 1} {t.name}: {r['wall']:.3f} s wall, "
                        f"{r['cpu']:.3f} s cpu, {r['rss_kb'] / 1024:.1f} MiB"
                        + (f", {r['connections']} conns" if "connections" in r else ""))
        summary = []
        for t in w["tools"]:
            rs = runs[t.name]
            if t.name in failed:
                summary.append({"tool": t.name, "note": t.note, "argv": t.argv, "failed": failed[t.name],
                                "size": t.size, "ideal": t.ideal})
                continue
            med = {key: statistics.median(r[key] for r in rs) for key in ("wall", "cpu", "rss_kb")}
            if all("connections" in r for r in rs):
                med["connections"] = statistics.median(r["connections"] for r in rs)
                med["protocols"] = sorted({p for r in rs for p in r["protocols"]})
            if t.wrk:
                med["wrk_rps"] = statistics.median(r["wrk_rps"] for r in rs)
                if all("wrk_p50_ms" in r for r in rs):
                    med["wrk_p50_ms"] = statistics.median(r["wrk_p50_ms"] for r in rs)
            med["walls"] = [round(r["wall"], 4) for r in rs]
            if t.ideal:
                med["ideal"] = t.ideal
            if t.size:
                med["size"] = t.size
            summary.append({"tool": t.name, "note": t.note, "argv": t.argv, **med})
            log(f"  {w['id']} {t.name}: median {med['wall']:.3f} s wall, {med['cpu']:.3f} s cpu, "
                f"{med['rss_kb'] / 1024:.1f} MiB peak RSS"
                + (f", {med['connections']:g} connections" if "connections" in med else ""))
        results[w["id"]] = {"title": w["title"], "rounds": rounds, "tools": summary,
                            "ideal": w.get("ideal")}
        if w.get("callgrind"):
            results[w["id"]]["callgrind"] = callgrind_pass(a, w, tmp)
    return results


def callgrind_pass(a, w, tmp):
    """Instructions per request of each tool of workload 13, counted by
    valgrind's callgrind over `--callgrind-requests` requests (deterministic,
    so it holds on a loaded machine where times do not). Keeps the top
    functions by self cost of each run in the results directory."""
    if not shutil.which("valgrind"):
        log("w13: valgrind is not installed: no instruction counts")
        return None
    n = w["callgrind"]
    out = {}
    for t in w["tools"]:
        argv = list(t.argv)
        argv[argv.index("--var", argv.index("--var") + 1) + 1] = f"n={n}"
        slug = re.sub(r"[^a-z0-9]+", "_", t.name).strip("_")
        cg_out = os.path.join(tmp, f"callgrind.{slug}.out")
        offset = t.http.log_offset()
        r = run_measured(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}", *argv],
                         stderr_path=os.path.join(tmp, f"stderr-cg-{slug}.txt"), timeout=900, cwd=tmp)
        rows = t.http.log_since(offset, expect=n)
        if r["rc"] != 0 or len(rows) != n or any(st != "200" for _, st, _ in rows):
            raise RunError(f"w13 callgrind {t.name}: exit {r['rc']}, nginx saw {len(rows)} of {n}\n"
                           + tail(os.path.join(tmp, f"stderr-cg-{slug}.txt")))
        total = None
        with open(cg_out, errors="replace") as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total = int(line.split()[1])
        top = cmd_output(["callgrind_annotate", "--threshold=99", cg_out])
        out[t.name] = {"instructions": total, "requests": n,
                       "per_request": total / n if total else None}
        if not a.smoke:
            res_dir = a.results_dir or os.path.join(HERE, "results")
            os.makedirs(res_dir, exist_ok=True)
            with open(os.path.join(res_dir, f"callgrind-w13-{slug}.txt"), "w") as f:
                f.write(f"# {' '.join(shlex.quote(x) for x in argv)}\n# {n} requests\n")
                f.write("\n".join(top.splitlines()[:60]) + "\n")
        log(f"  w13 callgrind {t.name}: {total:,} instructions, {total / n:,.0f} per request")
    return out


def verify_delay(srv, tmp, smoke):
    """Checks that the latency endpoint really answers in ~50 ms when 50
    requests are in flight (wrk's median latency and throughput)."""
    if smoke or not shutil.which("wrk"):
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sSf", "-o", "/dev/null", f"{srv.url()}/delay/1.json"], check=True,
                       timeout=10)
        dt = time.perf_counter() - t0
        if dt < DELAY_S:
            raise RunError(f"the latency endpoint answered in {dt * 1000:.1f} ms, under 50 ms")
        return {"single_ms": dt * 1000}
    out = subprocess.run(["wrk", "-t1", f"-c{CONCURRENCY}", "-d2s", "--latency",
                          f"{srv.url()}/delay/1.json"], stdout=subprocess.PIPE, text=True,
                         timeout=30).stdout
    p50 = re.search(r"50%\s+([\d.]+)ms", out)
    p99 = re.search(r"99%\s+([\d.]+)ms", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res = {"p50_ms": float(p50.group(1)) if p50 else None,
           "p99_ms": float(p99.group(1)) if p99 else None,
           "rps": float(rps.group(1)) if rps else None}
    if not res["p50_ms"] or not (50 <= res["p50_ms"] < 60):
        raise RunError(f"latency endpoint: wrk median {res['p50_ms']} ms, expected 50-60 ms\n{out}")
    time.sleep(0.3)  # the requests wrk left in flight finish and are logged
    log(f"latency endpoint: median {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
        f"{res['rps']} req/s at concurrency {CONCURRENCY}")
    return res


# ------------------------------------------------------------------ targets


def fig(results, wid, tool, key="wall"):
    w = results.get(wid)
    if not w:
        return None
    for t in w["tools"]:
        if t["tool"] == tool:
            return t.get(key)
    return None


def targets(results):
    """(workload, description, measured ratio, limit, 'le'|'ge'|'eq', met,
    the same ratio on CPU time or None). The CPU-time ratio is there
    because this machine is shared: other load stretches wall times, CPU
    time much less."""
    out = []

    def add(wid, desc, num, den, limit, op="le", cpu=None):
        if num is None or den is None or den == 0:
            out.append((wid, desc, None, limit, op, None, None))
            return
        ratio = num / den
        met = ratio <= limit if op == "le" else ratio >= limit if op == "ge" else ratio == limit
        cr = None
        if cpu and cpu[0] is not None and cpu[1]:
            cr = cpu[0] / cpu[1]
        out.append((wid, desc, ratio, limit, op, met, cr))

    def both(wid, a, b):
        return fig(results, wid, a), fig(results, wid, b), (fig(results, wid, a, "cpu"),
                                                            fig(results, wid, b, "cpu"))

    n, d, c = both("w1", "pacer", "curl --parallel")
    add("w1", "pacer wall / curl --parallel wall", n, d, 0.8, cpu=c)
    n, d, c = both("w1", "asyncio+aiohttp", "pacer")
    add("w1", "aiohttp wall / pacer wall (speed-up)", n, d, 6.0, "ge", cpu=c)
    add("w1", "pacer peak RSS / aiohttp peak RSS", fig(results, "w1", "pacer", "rss_kb"),
        fig(results, "w1", "asyncio+aiohttp", "rss_kb"), 0.5)
    add("w1", "pacer connections opened / concurrency", fig(results, "w1", "pacer", "connections"),
        CONCURRENCY if "w1" in results else None, 1.0, "eq")
    n, d, c = both("w2", "pacer", "curl --parallel")
    add("w2", "pacer wall / curl --parallel wall (HTTP/2)", n, d, 1.0, cpu=c)
    add("w3", "pacer wall / ideal", fig(results, "w3", "pacer"),
        results.get("w3", {}).get("ideal"), 1.05)
    n, d, c = both("w4", "pacer", "asyncio")
    add("w4", "pacer wall / asyncio wall", n, d, 0.5, cpu=c)
    add("w4", "pacer peak RSS / asyncio peak RSS", fig(results, "w4", "pacer", "rss_kb"),
        fig(results, "w4", "asyncio", "rss_kb"), 0.25)
    n, d, c = both("w5", "pacer", "python3 -c asyncio")
    add("w5", "pacer start-up / python3 start-up", n, d, 0.1, cpu=c)
    return out


def derived_16(results):
    """Figures computed across the tools or workloads of issue 16: CPU
    growth exponents (w7), memory per retained result (w8-w10) and wall
    time against each tool's ideal (w11, w12)."""
    d = {}
    w7 = results.get("w7")
    if w7:
        for who in ("pacer", "asyncio+aiohttp"):
            pts = sorted((t["size"], t["cpu"]) for t in w7["tools"]
                         if t["tool"].startswith(who + " N=") and not t.get("failed"))
            if len(pts) >= 2 and pts[0][1] > 0:
                (n0, c0), (n1, c1) = pts[0], pts[-1]
                d[f"w7 {who}"] = {"exponent": math.log(c1 / c0) / math.log(n1 / n0),
                                  "us_per_request": {n: c / n * 1e6 for n, c in pts}}
    reads = [results[w] for w in ("w8", "w9", "w10") if w in results]
    if len(reads) >= 2:
        per = {}
        for t in reads[0]["tools"]:
            if t["tool"].startswith(("curl", "Artillery")):
                continue  # they keep no result: their memory does not grow per result
            pts = sorted((u["size"], u["rss_kb"]) for w in reads for u in w["tools"]
                         if u["tool"] == t["tool"] and not u.get("failed"))
            if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
                (n0, r0), (n1, r1) = pts[0], pts[-1]
                per[t["tool"]] = {"bytes_per_result": (r1 - r0) * 1024 / (n1 - n0), "from": n0, "to": n1}
        d["retained"] = per
    return d


def targets_16(results, d):
    """Issue 16's targets, measured as same-run ratios."""
    out = []

    def add(wid, desc, num, den, limit, op="le", cpu=None):
        if num is None or den is None or den == 0:
            out.append((wid, desc, None, limit, op, None, None))
            return
        ratio = num / den
        met = None if op == "ref" else ratio <= limit if op == "le" else ratio >= limit
        cr = cpu[0] / cpu[1] if cpu and cpu[0] is not None and cpu[1] else None
        out.append((wid, desc, ratio, limit, op, met, cr))

    def both(wid, a, b):
        return fig(results, wid, a), fig(results, wid, b), (fig(results, wid, a, "cpu"),
                                                            fig(results, wid, b, "cpu"))

    n, dd, c = both("w6", "pacer", "asyncio+aiohttp")
    add("w6", "pacer wall / aiohttp gather wall (no limit)", n, dd, 0.35, cpu=c)
    g = d.get("w7 pacer")
    if "w7" in results:
        span = (f"N = {min(g['us_per_request']):,} → {max(g['us_per_request']):,}" if g else "")
        out.append(("w7", f"pacer CPU growth exponent, {span} (1 = linear; sizes not finished left out)",
                    g["exponent"] if g else None, 1.1, "le",
                    (g["exponent"] <= 1.1) if g else None, None))
    ret = d.get("retained", {})
    if ret:
        p, q = ret.get("pacer"), ret.get("asyncio+aiohttp")
        out.append(("w8–w10", "pacer peak RSS per retained result (bytes)",
                    p["bytes_per_result"] if p else None, 400, "le",
                    (p["bytes_per_result"] <= 400) if p else None, None))
        if p and q:
            out.append(("w8–w10", "the same for aiohttp (bytes; for reference)", q["bytes_per_result"],
                        0, "ref", None, None))
    add("w9", "pacer peak RSS / aiohttp peak RSS", fig(results, "w9", "pacer", "rss_kb"),
        fig(results, "w9", "asyncio+aiohttp", "rss_kb"), 0.35)
    n, dd, c = both("w9", "pacer", "asyncio+aiohttp")
    add("w9", "pacer wall / aiohttp wall", n, dd, 0.2, cpu=c)
    n, dd, c = both("w9", "pacer", f"curl --parallel-max {CONCURRENCY}")
    add("w9", "pacer wall / curl --parallel wall", n, dd, 0.7, cpu=c)
    for wid in ("w11", "w12"):
        t = fig(results, wid, "pacer (max_connections: 0)")
        add(wid, "pacer (max_connections: 0) wall / ideal", t, SLOW_S if t else None, 5.0)
    n, dd, c = both("w13", "pacer, expect.that", "pacer, no expect.that")
    cg = (results.get("w13") or {}).get("callgrind") or {}
    if cg.get("pacer, expect.that") and cg.get("pacer, no expect.that"):
        add("w13", "instructions per request, expect.that / none (callgrind)",
            cg["pacer, expect.that"]["per_request"], cg["pacer, no expect.that"]["per_request"], 1.15)
    add("w13", "CPU time, expect.that / none", c[0], c[1], 1.15)
    n, dd, c = both("w15", "pacer", "python3 -c asyncio")
    add("w15", "pacer start-up / python3 start-up", n, dd, 0.1, cpu=c)
    n, dd, c = both("w14", "pacer", "asyncio")
    add("w14", "pacer wall / asyncio wall (1M sleeps; no target in the issue)", n, dd, 0, "ref", cpu=c)
    return out


# ------------------------------------------------------------------ chart


def svg_chart(results, path, group=None):
    """Horizontal bars, one panel per workload: wall time (left) and peak
    RSS (right) of each tool, pacer highlighted, with the target drawn as a
    dashed line where the issue sets one."""
    tgt = {}
    if "w1" in results:
        c = fig(results, "w1", "curl --parallel")
        a = fig(results, "w1", "asyncio+aiohttp", "rss_kb")
        tgt["w1"] = (c * 0.8 if c else None, a * 0.5 if a else None)
    if "w2" in results:
        c = fig(results, "w2", "curl --parallel")
        tgt["w2"] = (c if c else None, None)
    if "w3" in results:
        tgt["w3"] = (results["w3"]["ideal"] * 1.05, None)
    if "w4" in results:
        a, r = fig(results, "w4", "asyncio"), fig(results, "w4", "asyncio", "rss_kb")
        tgt["w4"] = (a * 0.5 if a else None, r * 0.25 if r else None)
    if "w5" in results:
        p = fig(results, "w5", "python3 -c asyncio")
        tgt["w5"] = (p * 0.1 if p else None, None)

    width, label_w, bar_w, row_h, gap = 960, 150, 300, 20, 34
    col2 = label_w + bar_w + 90
    y = 50
    parts = []

    def esc(s):
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def fmt_t(s):
        return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"

    for wid in (group or GROUPS[0])["workloads"]:
        w = results.get(wid)
        if not w:
            continue
        parts.append(f'<text x="10" y="{y}" class="h">{esc(wid + ": " + w["title"])}</text>')
        y += 10
        tools = [t for t in w["tools"] if not t.get("failed")]
        maxw = max([t["wall"] for t in tools] + [tgt.get(wid, (None, None))[0] or 0])
        maxr = max([t["rss_kb"] for t in tools] + [tgt.get(wid, (None, None))[1] or 0])
        top = y
        for t in tools:
            cls = "p" if t["tool"].startswith("pacer") else "o"
            parts.append(f'<text x="{label_w - 6}" y="{y + 14}" class="l">{esc(t["tool"])}</text>')
            bw = max(1.0, bar_w * t["wall"] / maxw)
            parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" class="{cls}"/>')
            parts.append(f'<text x="{label_w + bw + 4:.1f}" y="{y + 14}" class="v">{fmt_t(t["wall"])}</text>')
            rw = max(1.0, bar_w * t["rss_kb"] / maxr)
            parts.append(f'<rect x="{col2}" y="{y + 3}" width="{rw:.1f}" height="{row_h - 6}" class="{cls}"/>')
            parts.append(f'<text x="{col2 + rw + 4:.1f}" y="{y + 14}" class="v">{t["rss_kb"] / 1024:.1f} MiB</text>')
            y += row_h
        tw, tr = tgt.get(wid, (None, None))
        if tw:
            x = label_w + bar_w * tw / maxw
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" class="t"/>')
        if tr:
            x = col2 + bar_w * tr / maxr
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" class="t"/>')
        y += gap
    height = y
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
            '<style>.h{font-weight:bold;font-size:13px}.l{text-anchor:end}.v{fill:#333}'
            '.p{fill:#d9552b}.o{fill:#7a8ea8}.t{stroke:#111;stroke-dasharray:4 3;stroke-width:1.5}'
            '.c{font-weight:bold;fill:#555}</style>\n'
            '<rect width="100%" height="100%" fill="#fff"/>\n'
            f'<text x="{label_w}" y="24" class="c">wall time (median; shorter is better)</text>\n'
            f'<text x="{col2}" y="24" class="c">peak RSS (median)</text>\n'
            f'<text x="{width - 10}" y="24" text-anchor="end" fill="#555">dashed: target</text>\n')
    with open(path, "w") as f:
        f.write(head + "\n".join(parts) + "\n</svg>\n")


# ------------------------------------------------------------------ report


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "memory": mem,
            "os": cmd_output(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
            "load_at_start": load}


def sizes(text):
    """--growth-sizes and friends: N,N,... (each 1..1 000 000)."""
    out = [int(x) for x in text.split(",") if x.strip()]
    if not out or any(not 1 <= n <= 1_000_000 for n in out):
        raise argparse.ArgumentTypeError("a comma-separated list of request counts, each 1..1000000")
    return out


def network_info():
    """How the run is kept off the network: scripts/bench runs the harness
    in a network namespace of its own with only loopback, when it can."""
    if os.environ.get("PACER_BENCH_NETNS") == "1":
        return "the harness, nginx and every tool ran in a network namespace with only loopback (unshare --net)"
    return "the host's network namespace; every tool talks to 127.0.0.1 only"


def versions(a):
    v = {"pacer": cmd_output([a.pacer, "version"]).replace("\n", ", "),
         **({"pacer@base": cmd_output([a.baseline, "version"]).replace("\n", ", ")} if a.baseline else {}),
         "curl": cmd_output(["curl", "--version"]).splitlines()[0],
         "nginx": cmd_output([nginx_binary(), "-v"]),
         "python": cmd_output([a.python, "--version"]),
         "aiohttp": cmd_output([a.python, "-c", "import aiohttp; print(aiohttp.__version__)"]),
         "openssl": cmd_output(["openssl", "version"])}
    if shutil.which("wrk"):
        v["wrk"] = cmd_output(["wrk", "--version"]).splitlines()[0]
    peers = npm_peers(a)
    if peers:
        v["node"] = cmd_output(["node", "--version"])
        for exe in peers:
            try:
                with open(os.path.join(HERE, "node_modules", exe, "package.json")) as f:
                    v[NPM_PEERS[exe]] = json.load(f)["version"]
            except (OSError, ValueError, KeyError):
                v[NPM_PEERS[exe]] = "unknown"
    return v


def fmt_ratio(r, op, limit, desc=""):
    if r is None:
        return "not measured"
    if "(bytes" in desc:
        return f"{r:,.0f} B"
    if "exponent" in desc:
        return f"{r:.2f}"
    if op == "eq":
        return f"{r:.2f}"
    return f"{r:.2f}×" if op != "ge" else f"{r:.1f}×"


def render_markdown(meta, results, tg, group=None):
    group = group or GROUPS[0]
    L = []
    cmd = meta.get("command") or "bench/bench.py " + " ".join(meta["args"])
    rounds = sorted({w["rounds"] for w in results.values()})
    L.append(f"Measured {meta['date']} by `{cmd}`"
             f" ({'/'.join(str(r) for r in rounds)} alternating rounds per workload, as each table says;"
             " every figure is the median over the rounds).")
    L.append("")
    if meta.get("note"):
        L.append(f"**{meta['note']}**")
        L.append("")
    if meta.get("network"):
        L.append(f"**Network:** {meta['network']}.")
        L.append("")
    m = meta["machine"]
    L.append(f"**Machine:** {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']}, "
             f"{m['os']}; load average at start {m['load_at_start']}. The machine is shared, so only "
             "ratios from the same run are compared.")
    L.append("")
    L.append("**Versions:** " + "; ".join(f"{k}: {v}" for k, v in meta["versions"].items()))
    L.append("")
    d = meta.get("delay", {})
    if d.get("p50_ms"):
        L.append(f"**Latency endpoint** ({meta['delay_mode']}): checked with wrk at concurrency "
                 f"{CONCURRENCY}: median {d['p50_ms']} ms, p99 {d['p99_ms']} ms, {d['rps']:.0f} req/s.")
        L.append("")
    L.append(f"### Targets (issue {group['issue']})")
    L.append("")
    L.append("| workload | ratio | measured | target | met | the same ratio on CPU time |")
    L.append("|---|---|---|---|---|---|")
    for wid, desc, r, limit, op, met, cr in tg:
        sign = {"le": "≤", "ge": "≥", "eq": "="}.get(op)
        L.append(f"| {wid} | {desc} | {fmt_ratio(r, op, limit, desc)} | "
                 f"{f'{sign} {limit:g}' if sign else '(reference)'} | "
                 f"{'—' if met is None else ('yes' if met else '**no**')} | "
                 f"{fmt_ratio(cr, op, limit) if cr is not None else ''} |")
    L.append("")
    L.append("### Figures")
    L.append("")
    L.append(f"![benchmark chart](../bench/results/{group['chart']})")
    L.append("")
    derived = derived_16(results) if group["issue"] == 16 else {}
    derived["last_read"] = [x for x in ("w8", "w9", "w10") if x in results][-1:]
    for wid, w in results.items():
        L.append(f"**{wid}: {w['title']}**"
                 + (f" — ideal {w['ideal']:.2f} s" if w.get("ideal") else "")
                 + f" ({w['rounds']} rounds)")
        L.append("")
        has_conn = any("connections" in t for t in w["tools"])
        has_ideal = any(t.get("ideal") for t in w["tools"])
        L.append("| tool | wall | CPU (user+sys) | peak RSS | " + ("connections | protocol | " if has_conn else "")
                 + ("ideal | wall / ideal | " if has_ideal else "")
                 + "wall of each round (s) | note |")
        L.append("|---|---|---|---|" + ("---|---|" if has_conn else "") + ("---|---|" if has_ideal else "")
                 + "---|---|")
        for t in w["tools"]:
            if t.get("failed"):
                empty = 3 + (2 if has_conn else 0) + (2 if has_ideal else 0)
                L.append(f"| {t['tool']} | **failed** |" + " |" * empty
                         + f" {'; '.join(x for x in (t['note'], t['failed'].replace('|', '/')) if x)} |")
                continue
            wall = f"{t['wall'] * 1000:.1f} ms" if t["wall"] < 1 else f"{t['wall']:.3f} s"
            cpu = f"{t['cpu'] * 1000:.1f} ms" if t["cpu"] < 1 else f"{t['cpu']:.3f} s"
            row = f"| {t['tool']} | {wall} | {cpu} | {t['rss_kb'] / 1024:.1f} MiB | "
            if has_conn:
                row += f"{t.get('connections', 0):g} | {', '.join(t.get('protocols', []))} | "
            if has_ideal:
                row += (f"{t['ideal']:.2f} s | {t['wall'] / t['ideal']:.1f}× | " if t.get("ideal") else " | | ")
            note = t["note"]
            if "wrk_rps" in t:
                note = (note + "; " if note else "") + f"{t['wrk_rps']:.0f} req/s"
            row += ", ".join(f"{x:.3f}" for x in t["walls"]) + f" | {note} |"
            L.append(row)
        L.append("")
        L.extend(render_derived(wid, w, derived))
    L.append("### Commands")
    L.append("")
    L.append("Run from a temporary directory holding the certificate and the curl config files "
             "(`BASE` is nginx's loopback address and port, chosen at run time):")
    L.append("")
    L.append("```sh")
    tmp = meta["tmp"]
    for wid, w in results.items():
        for t in w["tools"]:
            argv = [x.replace(tmp, ".").replace(ROOT + "/", "") for x in t["argv"]]
            argv = [re.sub(r"https?://127\.0\.0\.1:\d+", "BASE", x) for x in argv]
            L.append(f"# {wid} {t['tool']}")
            L.append(" ".join(shlex.quote(x) for x in argv))
    L.append("```")
    return "\n".join(L)


def render_derived(wid, w, derived):
    """The figures of issue 16 computed across tools or workloads, under
    the table of the workload they belong to."""
    L = []
    if wid == "w7":
        rows = {}
        for who in ("pacer", "asyncio+aiohttp"):
            g = derived.get(f"w7 {who}")
            if g:
                for n, us in g["us_per_request"].items():
                    rows.setdefault(n, {})[who] = us
        if rows:
            L.append("| N | pacer CPU per request | aiohttp CPU per request |")
            L.append("|---|---|---|")
            for n in sorted(rows):
                r = rows[n]
                cell = [f"{r[k]:.1f} µs" if k in r else "not finished" for k in ("pacer", "asyncio+aiohttp")]
                L.append(f"| {n:,} | {cell[0]} | {cell[1]} |")
            L.append("")
            L.append("Growth of CPU time with N (exponent k of CPU ∝ N^k, smallest to largest N): "
                     + "; ".join(f"{who} {derived[f'w7 {who}']['exponent']:.2f}"
                                 for who in ("pacer", "asyncio+aiohttp") if f"w7 {who}" in derived) + ".")
            L.append("")
    if derived.get("retained") and wid in derived.get("last_read", ()):
        L.append("Peak RSS per retained result, (RSS at the largest N − RSS at the smallest) / (difference "
                 "in N), from the workloads above:")
        L.append("")
        L.append("| tool | bytes per result | between N = |")
        L.append("|---|---|---|")
        for tool, r in derived["retained"].items():
            L.append(f"| {tool} | {r['bytes_per_result']:.0f} | {r['from']:,} and {r['to']:,} |")
        L.append("")
    if wid == "w13" and w.get("callgrind"):
        L.append("Instructions per request (valgrind callgrind, same binary, start-up included and "
                 "spread over the requests):")
        L.append("")
        L.append("| tool | requests | instructions | per request |")
        L.append("|---|---|---|---|")
        for tool, r in w["callgrind"].items():
            L.append(f"| {tool} | {r['requests']:,} | {r['instructions']:,} | {r['per_request']:,.0f} |")
        L.append("")
    return L


DOC_HEAD = """# Benchmarks

`scripts/bench` measures pacer against what users would otherwise run, side by
side in one run (issue 6). See the end of this file for how it works.

"""
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# The workloads in two groups, each with its own block in
# docs/BENCHMARKS.md, its own results file and chart: a run writes only
# the blocks of the groups it ran, so a run of the new workloads on a
# loaded machine leaves the figures of the others alone.
GROUPS = [
    {"issue": 6, "workloads": ("w1", "w2", "w3", "w4", "w5"), "markers": (BEGIN, END),
     "results": "results.json", "chart": "chart.svg"},
    {"issue": 16, "workloads": ("w6", "w7", "w8", "w9", "w10", "w11", "w12", "w13", "w14", "w15"),
     "markers": ("<!-- bench16:begin -->", "<!-- bench16:end -->"),
     "results": "results-16.json", "chart": "chart-16.svg"},
]
WORKLOAD_IDS = [w for g in GROUPS for w in g["workloads"]]


def write_doc(path, body, markers=(BEGIN, END)):
    BEGIN, END = markers
    text = DOC_HEAD + BEGIN + "\n" + END + "\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    pre, rest = text.split(BEGIN, 1)
    _, post = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(pre + BEGIN + "\n" + body + "\n" + END + post)


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pacer", required=True, help="the pacer binary to measure")
    ap.add_argument("--baseline", metavar="PACER",
                    help="also run this pacer binary (e.g. the commit before a change) as pacer@base "
                         "beside each pacer tool, in the same alternating rounds")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="the Python with aiohttp (default: Debian's /usr/bin/python3)")
    ap.add_argument("--smoke", action="store_true", help="tiny correctness-only run (CI)")
    ap.add_argument("--runs", type=int, default=5, help="rounds per workload (default 5)")
    ap.add_argument("--startup-runs", type=int, default=21, help="rounds for start-up (default 21)")
    ap.add_argument("--requests", type=int, default=20000, help="workloads 1 and 2 (default 20000)")
    ap.add_argument("--latency-requests", type=int, default=1000, help="workload 3 (default 1000)")
    ap.add_argument("--sleeps", type=int, default=100000, help="workload 4 (default 100000)")
    ap.add_argument("--unlimited-requests", type=int, default=20000,
                    help="workload 6, no concurrency limit (default 20000)")
    ap.add_argument("--growth-sizes", type=sizes, default=[1000, 10000, 100000], metavar="N,N,...",
                    help="workload 7, CPU against N (default 1000,10000,100000)")
    ap.add_argument("--growth-timeout", type=int, default=240,
                    help="workload 7: seconds a run may take before it is recorded as not finished (default 240)")
    ap.add_argument("--read-sizes", type=sizes, default=[10000, 50000, 100000], metavar="N,N,N",
                    help="workloads 8-10, results read afterwards (default 10000,50000,100000)")
    ap.add_argument("--wide-sizes", type=sizes, default=[1000, 5000], metavar="N,N",
                    help="workloads 11-12, concurrent GETs at 100 ms latency (default 1000,5000)")
    ap.add_argument("--callgrind-requests", type=int, default=5000,
                    help="workload 13, requests counted under callgrind (default 5000)")
    ap.add_argument("--many-sleeps", type=int, default=1000000, help="workload 14 (default 1000000)")
    ap.add_argument("--startup-runs-16", type=int, default=11,
                    help="rounds of workload 15, start-up with the npm peers (default 11)")
    ap.add_argument("--npm-max-requests", type=int, default=10000,
                    help="leave Step CI and Artillery out of workloads 8-10 above this N (default 10000)")
    ap.add_argument("--no-npm-peers", dest="npm_peers", action="store_false",
                    help="leave Step CI and Artillery out even when bench/node_modules has them")
    ap.add_argument("--note", help="a line printed in bold at the head of the doc block")
    ap.add_argument("--only", action="append", choices=WORKLOAD_IDS,
                    help="run only this workload (repeatable)")
    ap.add_argument("--tool", action="append", metavar="NAME",
                    help="run only the tools whose name starts with NAME (repeatable)")
    ap.add_argument("--no-wrk", dest="wrk", action="store_false", help="leave wrk out")
    ap.add_argument("--write-doc", action="store_true",
                    help="write the results into docs/BENCHMARKS.md")
    ap.add_argument("--serve", type=float, metavar="SECONDS", default=0,
                    help="only start the servers, print their URLs and keep them up (max 3600 s)")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="run nothing: render the doc and chart again from a saved results.json")
    ap.add_argument("--results-dir", metavar="DIR",
                    help="where results.json and chart.svg go (default: bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if a.smoke:
        a.runs, a.startup_runs = 1, 2
        a.requests, a.latency_requests, a.sleeps = 300, 100, 2000
        a.unlimited_requests, a.growth_sizes, a.read_sizes = 300, [100, 300], [100, 300, 500]
        a.wide_sizes, a.callgrind_requests, a.many_sleeps, a.startup_runs_16 = [100, 300], 20, 5000, 1
        a.wrk, a.write_doc = False, False
    a.serve = min(max(a.serve, 0), 3600)
    for n in ("runs", "startup_runs", "requests", "latency_requests", "sleeps", "unlimited_requests",
              "callgrind_requests", "many_sleeps", "startup_runs_16", "npm_max_requests"):
        if not 1 <= getattr(a, n) <= (100 if "runs" in n else 1_000_000):
            ap.error(f"--{n.replace('_', '-')} out of range")

    if a.render:
        # Re-render the doc and chart from a saved results.json.
        with open(a.render) as f:
            saved = json.load(f)
        publish(a, saved["meta"], saved["results"], time.monotonic())
        return 0

    tmp = tempfile.mkdtemp(prefix="pacer-bench.")
    srv = Servers(tmp)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    t_start = time.monotonic()
    try:
        meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "args": sys.argv[1:], "command": os.environ.get("PACER_BENCH_CMD"), "runs": a.runs, "startup_runs": a.startup_runs,
                "machine": machine_info(), "versions": versions(a), "tmp": tmp, "note": a.note,
                "network": network_info()}
        srv.start()
        if a.serve:
            # For profiling by hand: the servers alone, for a bounded time.
            print(f"http: {srv.url()}  https: {srv.url(True)}  ca_file: {srv.cert}", flush=True)
            time.sleep(a.serve)
            return 0
        meta["delay_mode"] = srv.delay_mode
        log(f"nginx on {srv.url()} and {srv.url(True)}; latency endpoint: {srv.delay_mode}")
        meta["delay"] = verify_delay(srv, tmp, a.smoke)
        wls = build_workloads(a, srv, tmp)
        results = run_workloads(a, wls, tmp)
    except RunError as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        srv.stop()
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    if a.smoke:
        print(f"bench smoke: {sum(len(w['tools']) for w in results.values())} tool runs over "
              f"{len(results)} workloads checked in {time.monotonic() - t_start:.1f} s "
              f"(correctness only, no timing claims); network: {network_info()}")
        return 0
    return publish(a, meta, results, t_start)


def publish(a, meta, all_results, t_start):
    out_dir = a.results_dir or os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    for group in GROUPS:
        results = {k: v for k, v in all_results.items() if k in group["workloads"]}
        if not results:
            continue
        if group["issue"] == 16:
            tg = targets_16(results, derived_16(results))
        else:
            tg = targets(results)
        with open(os.path.join(out_dir, group["results"]), "w") as f:
            json.dump({"meta": meta, "results": results, "derived": derived_16(results) if group["issue"] == 16 else {},
                       "targets": [dict(zip(("workload", "ratio", "measured", "limit", "op", "met", "cpu_ratio"), t))
                                   for t in tg]}, f, indent=1)
        svg_chart(results, os.path.join(out_dir, group["chart"]), group)
        body = render_markdown(meta, results, tg, group)
        print(body)
        if a.write_doc:
            write_doc(os.path.join(ROOT, "docs", "BENCHMARKS.md"), body, group["markers"])
            log(f"wrote the issue {group['issue']} block of docs/BENCHMARKS.md")
    log(f"results in {out_dir} ({time.monotonic() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
