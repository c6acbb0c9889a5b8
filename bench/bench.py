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

Each run is one child process; its wall time is measured around fork/exec
and wait, its CPU time (user+sys) and peak RSS come from wait4's rusage, and
the connections it opened are counted from nginx's access log ($connection).
Every run is checked for correctness (exit status, and nginx saw the
expected number of requests with status 200 over the expected protocol).

The results go to bench/results/ (results.json, chart.svg) and, with
--write-doc, into docs/BENCHMARKS.md between its bench:begin/end markers.
--smoke runs every tool once on a few hundred requests, for correctness
only (CI), and makes no timing claims.

Everything runs on loopback, with bounded request counts and durations, in a
temporary directory; nginx and the helper servers are stopped on exit,
including on SIGINT/SIGTERM.
"""
import argparse
import datetime
import json
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


def run_measured(argv, *, stdout_path=None, stderr_path, timeout, cwd=None):
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
                             cwd=cwd, start_new_session=True)
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
            load = f"load_module {echo};"
        else:
            port = free_port()
            self.delay_mode = f"bench/delay_server.py (asyncio) behind nginx, {DELAY_S}s"
            self.delay = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "delay_server.py"), str(port), str(DELAY_S)],
                stdin=subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent)
            wait_port(port, self.delay, "the delay server")
            delay = (f"            proxy_pass http://127.0.0.1:{port};\n"
                     "            proxy_http_version 1.1;\n"
                     "            proxy_set_header Connection \"\";")
            load = ""
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        conf = (conf.replace("@LOAD_ECHO@", load)
                .replace("@USER@", "user root root;" if os.geteuid() == 0 else "")
                .replace("@DIR@", self.tmp)
                .replace("@HTTP_PORT@", str(self.http_port))
                .replace("@HTTPS_PORT@", str(self.https_port))
                .replace("@DELAY@", delay))
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
                 check_stdout=None, wrk=False, note=""):
        self.name = name
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
                     timeout=timeout, cwd=tmp)
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
    if a.only:
        wl = [w for w in wl if w["id"] in a.only]
    if a.tool:
        for w in wl:
            w["tools"] = [t for t in w["tools"] if any(t.name.startswith(x) for x in a.tool)]
        wl = [w for w in wl if w["tools"]]
    return wl


def run_workloads(a, wls, tmp):
    results = {}
    for w in wls:
        rounds = a.startup_runs if w.get("startup") else a.runs
        log(f"{w['id']}: {w['title']} ({rounds} rounds, {len(w['tools'])} tools)")
        runs = {t.name: [] for t in w["tools"]}
        for k in range(rounds):
            # Alternate: each round starts with a different tool.
            order = w["tools"][k % len(w["tools"]):] + w["tools"][:k % len(w["tools"])]
            for t in order:
                r = run_tool(t, tmp, w["timeout"])
                runs[t.name].append(r)
                if not a.smoke and not w.get("startup"):
                    log(f"  {w['id']} round {k + 1} {t.name}: {r['wall']:.3f} s wall, "
                        f"{r['cpu']:.3f} s cpu, {r['rss_kb'] / 1024:.1f} MiB"
                        + (f", {r['connections']} conns" if "connections" in r else ""))
        summary = []
        for t in w["tools"]:
            rs = runs[t.name]
            med = {key: statistics.median(r[key] for r in rs) for key in ("wall", "cpu", "rss_kb")}
            if all("connections" in r for r in rs):
                med["connections"] = statistics.median(r["connections"] for r in rs)
                med["protocols"] = sorted({p for r in rs for p in r["protocols"]})
            if t.wrk:
                med["wrk_rps"] = statistics.median(r["wrk_rps"] for r in rs)
                if all("wrk_p50_ms" in r for r in rs):
                    med["wrk_p50_ms"] = statistics.median(r["wrk_p50_ms"] for r in rs)
            med["walls"] = [round(r["wall"], 4) for r in rs]
            summary.append({"tool": t.name, "note": t.note, "argv": t.argv, **med})
            log(f"  {w['id']} {t.name}: median {med['wall']:.3f} s wall, {med['cpu']:.3f} s cpu, "
                f"{med['rss_kb'] / 1024:.1f} MiB peak RSS"
                + (f", {med['connections']:g} connections" if "connections" in med else ""))
        results[w["id"]] = {"title": w["title"], "rounds": rounds, "tools": summary,
                            "ideal": w.get("ideal")}
    return results


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


# ------------------------------------------------------------------ chart


def svg_chart(results, path):
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

    for wid in ("w1", "w2", "w3", "w4", "w5"):
        w = results.get(wid)
        if not w:
            continue
        parts.append(f'<text x="10" y="{y}" class="h">{esc(wid + ": " + w["title"])}</text>')
        y += 10
        tools = w["tools"]
        maxw = max([t["wall"] for t in tools] + [tgt.get(wid, (None, None))[0] or 0])
        maxr = max([t["rss_kb"] for t in tools] + [tgt.get(wid, (None, None))[1] or 0])
        top = y
        for t in tools:
            cls = "p" if t["tool"] == "pacer" else "o"
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


def versions(a):
    v = {"pacer": cmd_output([a.pacer, "version"]).replace("\n", ", "),
         "curl": cmd_output(["curl", "--version"]).splitlines()[0],
         "nginx": cmd_output([nginx_binary(), "-v"]),
         "python": cmd_output([a.python, "--version"]),
         "aiohttp": cmd_output([a.python, "-c", "import aiohttp; print(aiohttp.__version__)"]),
         "openssl": cmd_output(["openssl", "version"])}
    if shutil.which("wrk"):
        v["wrk"] = cmd_output(["wrk", "--version"]).splitlines()[0]
    return v


def fmt_ratio(r, op, limit):
    if r is None:
        return "not measured"
    if op == "eq":
        return f"{r:.2f}"
    return f"{r:.2f}×" if op != "ge" else f"{r:.1f}×"


def render_markdown(meta, results, tg):
    L = []
    cmd = meta.get("command") or "bench/bench.py " + " ".join(meta["args"])
    L.append(f"Measured {meta['date']} by `{cmd}`"
             f" ({meta['runs']} alternating rounds per workload, {meta['startup_runs']} for start-up;"
             " every figure is the median over the rounds).")
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
    L.append("### Targets (issue 6)")
    L.append("")
    L.append("| workload | ratio | measured | target | met | the same ratio on CPU time |")
    L.append("|---|---|---|---|---|---|")
    for wid, desc, r, limit, op, met, cr in tg:
        sign = {"le": "≤", "ge": "≥", "eq": "="}[op]
        L.append(f"| {wid} | {desc} | {fmt_ratio(r, op, limit)} | {sign} {limit:g} | "
                 f"{'—' if met is None else ('yes' if met else '**no**')} | "
                 f"{fmt_ratio(cr, op, limit) if cr is not None else ''} |")
    L.append("")
    L.append("### Figures")
    L.append("")
    L.append("![benchmark chart](../bench/results/chart.svg)")
    L.append("")
    for wid, w in results.items():
        L.append(f"**{wid}: {w['title']}**"
                 + (f" — ideal {w['ideal']:.2f} s" if w.get("ideal") else ""))
        L.append("")
        has_conn = any("connections" in t for t in w["tools"])
        L.append("| tool | wall | CPU (user+sys) | peak RSS | " + ("connections | protocol | " if has_conn else "")
                 + "wall of each round (s) | note |")
        L.append("|---|---|---|---|" + ("---|---|" if has_conn else "") + "---|---|")
        for t in w["tools"]:
            wall = f"{t['wall'] * 1000:.1f} ms" if t["wall"] < 1 else f"{t['wall']:.3f} s"
            cpu = f"{t['cpu'] * 1000:.1f} ms" if t["cpu"] < 1 else f"{t['cpu']:.3f} s"
            row = f"| {t['tool']} | {wall} | {cpu} | {t['rss_kb'] / 1024:.1f} MiB | "
            if has_conn:
                row += f"{t.get('connections', 0):g} | {', '.join(t.get('protocols', []))} | "
            note = t["note"]
            if "wrk_rps" in t:
                note = (note + "; " if note else "") + f"{t['wrk_rps']:.0f} req/s"
            row += ", ".join(f"{x:.3f}" for x in t["walls"]) + f" | {note} |"
            L.append(row)
        L.append("")
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


DOC_HEAD = """# Benchmarks

`scripts/bench` measures pacer against what users would otherwise run, side by
side in one run (issue 6). See the end of this file for how it works.

"""
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_doc(path, body):
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
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="the Python with aiohttp (default: Debian's /usr/bin/python3)")
    ap.add_argument("--smoke", action="store_true", help="tiny correctness-only run (CI)")
    ap.add_argument("--runs", type=int, default=5, help="rounds per workload (default 5)")
    ap.add_argument("--startup-runs", type=int, default=21, help="rounds for start-up (default 21)")
    ap.add_argument("--requests", type=int, default=20000, help="workloads 1 and 2 (default 20000)")
    ap.add_argument("--latency-requests", type=int, default=1000, help="workload 3 (default 1000)")
    ap.add_argument("--sleeps", type=int, default=100000, help="workload 4 (default 100000)")
    ap.add_argument("--only", action="append", choices=["w1", "w2", "w3", "w4", "w5"],
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
        a.wrk, a.write_doc = False, False
    a.serve = min(max(a.serve, 0), 3600)
    for n in ("runs", "startup_runs", "requests", "latency_requests", "sleeps"):
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
                "machine": machine_info(), "versions": versions(a), "tmp": tmp}
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
              "(correctness only, no timing claims)")
        return 0
    return publish(a, meta, results, t_start)


def publish(a, meta, results, t_start):
    tg = targets(results)
    out_dir = a.results_dir or os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results,
                   "targets": [dict(zip(("workload", "ratio", "measured", "limit", "op", "met", "cpu_ratio"), t))
                               for t in tg]}, f, indent=1)
    svg_chart(results, os.path.join(out_dir, "chart.svg"))
    body = render_markdown(meta, results, tg)
    print(body)
    if a.write_doc:
        write_doc(os.path.join(ROOT, "docs", "BENCHMARKS.md"), body)
        log("wrote docs/BENCHMARKS.md")
    log(f"results in bench/results/ ({time.monotonic() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
