#!/usr/bin/env python3
"""Workflow-level integration tests: real workflow files through the real
binary. Each case is data, in the spirit of curl's tests/data:

tests/cases/NAME.yml is a workflow whose leading comment lines say what must
happen when it runs:

    # args: --var n=3                 extra arguments to `pacer run` (shlex)
    # exit: 1                         expected exit code (default 0)
    # stdout: line                    stdout must be exactly these lines, in order
    # stdout-sorted: line             ... the same, compared after sorting
    # stderr: text                    stderr must contain text (repeatable)
    # not-stderr: text                stderr must not contain text
    # time: < 1.5                     wall-time bound in seconds (repeatable: < and >)
    # max-rss: 40                     peak RSS bound in MiB (not with --no-rss:
                                      sanitizer builds use far more memory)
    # signal: INT 0.5                 send SIGINT (or TERM) after 0.5 s
    # env: NAME=VALUE                 extra environment
    # command: validate               run `pacer validate FILE` instead of `run`
    # report: json                    also write a JSON report, and check it is complete:
                                      valid JSON, the run's exit code, and `finally` if the
                                      file has one
    # server: http                    start tests/fixture_server.py; {http} is its URL
    # server: https                   ... in https mode (nginx, HTTP/2): {https} is its
                                      URL and {cafile} the CA certificate that signed it
    # server: httpbin                 a third-party server nobody here wrote: Debian's
                                      python3-httpbin under gunicorn on 127.0.0.1 (an
                                      ephemeral port); {httpbin} is its URL
                                      (several kinds: `# server: http httpbin`)
    # server: misbehave               start tests/misbehave_server.py (raw sockets:
                                      resets, lies in framing, huge headers, ...):
                                      {misbehave} is its URL, {blackhole} a port
                                      whose connects never complete
    # skip-if: sanitizer              skip the case on a sanitizer build (a binary
                                      that loads libasan), e.g. under ulimit -v, which
                                      ASan's shadow memory cannot live with

In args, env and expectations, {dir} is the case directory, {tmp} a fresh
temporary directory, {pacer} the binary under test and {http} the fixture
server's base URL. The examples in workflows/ are run as cases too.

tests/bad/NAME.yml are invalid workflows whose first line is
`# expect: LINE:COL: text`: `pacer validate` and `pacer run` must both exit 2,
print FILE:LINE:COL and the text, run nothing, and finish in well under a
second. empty.yml is the empty file.

Prints one line per case and a closing "N passed, N failed" line.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_header(path):
    spec = {"args": [], "exit": 0, "stdout": None, "stdout_sorted": None, "stderr": [],
            "not_stderr": [], "time": [], "signal": None, "env": {}, "command": "run",
            "server": None, "max_rss": None, "report": None, "skip_if": []}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^#\s*([a-z-]+):\s?(.*?)\s*$", line)
            if not m:
                if line.strip() and not line.startswith("#"):
                    break
                continue
            key, val = m.group(1), m.group(2)
            if key == "args":
                spec["args"] += shlex.split(val)
            elif key == "exit":
                spec["exit"] = int(val)
            elif key == "stdout":
                spec["stdout"] = (spec["stdout"] or []) + [val]
            elif key == "stdout-sorted":
                spec["stdout_sorted"] = (spec["stdout_sorted"] or []) + [val]
            elif key == "stderr":
                spec["stderr"].append(val)
            elif key == "not-stderr":
                spec["not_stderr"].append(val)
            elif key == "time":
                op, num = val.split()
                spec["time"].append((op, float(num)))
            elif key == "signal":
                name, after = val.split()
                spec["signal"] = (getattr(signal, "SIG" + name), float(after))
            elif key == "env":
                k, v = val.split("=", 1)
                spec["env"][k] = v
            elif key == "command":
                spec["command"] = val
            elif key == "server":
                spec["server"] = val
            elif key == "max-rss":
                spec["max_rss"] = float(val)
            elif key == "report":
                spec["report"] = val
            elif key == "skip-if":
                spec["skip_if"].append(val)
    return spec


class Servers:
    """Starts shared fixture servers on demand, once per test run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.procs = {}
        self.urls = {}

    def get(self, kind):
        """Returns the substitutions the server provides: {kind: URL}, and
        for https also {cafile: PATH}."""
        with self.lock:
            if kind == "httpbin" and kind not in self.urls:
                self.procs[kind], self.urls[kind] = start_httpbin()
            if kind not in self.urls:
                if kind == "misbehave":
                    cmd = [sys.executable, os.path.join(HERE, "misbehave_server.py")]
                    second = "blackhole"
                else:
                    cmd = [sys.executable, os.path.join(HERE, "fixture_server.py"), "--mode",
                           kind]
                    second = "cafile"
                p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                fields = p.stdout.readline().split()
                if not fields:
                    raise RuntimeError("fixture server %s did not start" % kind)
                self.procs[kind] = p
                self.urls[kind] = {kind: fields[0]}
                if len(fields) > 1:
                    self.urls[kind][second] = fields[1]
            return self.urls[kind]

    def stop(self):
        for kind, p in self.procs.items():
            # gunicorn: SIGINT is its quick shutdown (SIGTERM waits for
            # workers to finish gracefully).
            if kind == "httpbin":
                p.send_signal(signal.SIGINT)
            else:
                p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def start_httpbin():
    """Starts httpbin (python3-httpbin) under gunicorn on a socket bound
    here to 127.0.0.1 on an ephemeral port and handed to gunicorn (fd://),
    so there is no race for the port. Returns (process, {"httpbin": URL})
    once it answers. gunicorn dies with this process (PR_SET_PDEATHSIG), and
    its workers with gunicorn."""
    import socket
    import urllib.request
    gunicorn = shutil.which("gunicorn") or "/usr/bin/gunicorn"
    if not os.path.exists(gunicorn):
        raise RuntimeError("gunicorn is missing: run scripts/setup --test "
                           "(apt-get install gunicorn python3-httpbin)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = "http://127.0.0.1:%d" % sock.getsockname()[1]

    def pdeathsig():
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    p = subprocess.Popen([gunicorn, "--bind", "fd://%d" % sock.fileno(), "--worker-class",
                          "gthread", "--workers", "2", "--threads", "8", "--log-level",
                          "warning", "httpbin:app"],
                         pass_fds=[sock.fileno()], preexec_fn=pdeathsig,
                         stdout=subprocess.DEVNULL)
    sock.close()
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/get", timeout=5).read()
            return p, {"httpbin": url}
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                raise RuntimeError("httpbin did not start (python3-httpbin installed?)")
            time.sleep(0.05)


def subst(s, ctx):
    for k, v in ctx.items():
        s = s.replace("{" + k + "}", v)
    return s


# Upper time bounds are multiplied by this (sanitizer builds run slower).
TIME_FACTOR = 1.0
# Peak RSS bounds are checked (not on sanitizer builds).
CHECK_RSS = True


GNU_TIME = "/usr/bin/time"


def rss_wrapped(cmd, out_path):
    """cmd run under GNU time, which writes the peak RSS (KiB) to out_path.
    Not wait4 from here: Linux carries the high-water mark of a process over
    execve, so a child forked from this (large) Python process would report
    Python's RSS, not pacer's; GNU time is small."""
    return [GNU_TIME, "-f", "%M", "-o", out_path, "--"] + cmd


def read_rss_mib(out_path):
    with open(out_path) as f:
        lines = [l for l in f.read().split() if l.isdigit()]
    return int(lines[-1]) / 1024.0 if lines else None


def check_json_report(report, path, code):
    """Problems with the JSON report of a finished run (`# report: json`)."""
    try:
        with open(report, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        return ["no complete JSON report: %s" % e]
    problems = []
    run = data.get("run") or {}
    if run.get("exit_code") != code or not run.get("finished"):
        problems.append("report's run %r does not match exit code %d" % (run, code))
    with open(path, encoding="utf-8", errors="replace") as f:
        has_finally = re.search(r"^finally:", f.read(), re.M) is not None
    if has_finally and not any(s.get("path") == "finally" for s in data.get("steps", [])):
        problems.append("report has no `finally`")
    return problems


def is_sanitizer_build(pacer):
    """Whether the binary loads a sanitizer runtime (ldd lists libasan)."""
    try:
        out = subprocess.run(["ldd", pacer], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libubsan" in out


def run_case(pacer, path, servers):
    spec = parse_header(path)
    if "sanitizer" in spec["skip_if"] and is_sanitizer_build(pacer):
        return None, "", "", 0.0
    tmp = tempfile.mkdtemp(prefix="pacer-case-")
    ctx = {"dir": os.path.dirname(path), "tmp": tmp, "pacer": pacer}
    for kind in (spec["server"] or "").split():
        ctx.update(servers.get(kind))
    env = dict(os.environ)
    env.update({k: subst(v, ctx) for k, v in spec["env"].items()})
    env["NO_COLOR"] = "1"
    args = [subst(a, ctx) for a in spec["args"]]
    report = None
    if spec["report"] == "json":
        report = os.path.join(tmp, "case-report.json")
        args += ["--report", "json:" + report]
    cmd = [pacer, spec["command"], path] + args
    rss_file = None
    if spec["max_rss"] is not None and CHECK_RSS:
        rss_file = os.path.join(tmp, "peak-rss")
        cmd = rss_wrapped(cmd, rss_file)
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         text=True, errors="replace")
    if spec["signal"]:
        sig, after = spec["signal"]
        time.sleep(after)
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return ["timed out after 60 s"], out, err, time.monotonic() - start
    elapsed = time.monotonic() - start
    problems = []
    if p.returncode != spec["exit"]:
        problems.append("exit code %d, expected %d" % (p.returncode, spec["exit"]))
    lines = out.splitlines()
    if spec["stdout"] is not None:
        want = [subst(s, ctx) for s in spec["stdout"]]
        if lines != want:
            problems.append("stdout %r, expected %r" % (lines, want))
    if spec["stdout_sorted"] is not None:
        want = sorted(subst(s, ctx) for s in spec["stdout_sorted"])
        if sorted(lines) != want:
            problems.append("sorted stdout %r, expected %r" % (sorted(lines), want))
    for s in spec["stderr"]:
        if subst(s, ctx) not in err:
            problems.append("stderr lacks %r" % subst(s, ctx))
    for s in spec["not_stderr"]:
        if subst(s, ctx) in err:
            problems.append("stderr has %r" % subst(s, ctx))
    for op, bound in spec["time"]:
        if op == "<":
            bound *= TIME_FACTOR
        if (op == "<" and not elapsed < bound) or (op == ">" and not elapsed > bound):
            problems.append("took %.2fs, expected %s %.2fs" % (elapsed, op, bound))
    if report:
        problems += check_json_report(report, path, p.returncode)
    if rss_file:
        rss = read_rss_mib(rss_file) if os.path.exists(rss_file) else None
        if rss is None:
            problems.append("peak RSS not measured (GNU time)")
        elif rss > spec["max_rss"]:
            problems.append("peak RSS %.1f MiB, expected at most %.1f MiB"
                            % (rss, spec["max_rss"]))
    if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
        problems.append("sanitizer report")
    return problems, out, err, elapsed


def run_bad(pacer, path):
    name = os.path.basename(path)
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", "replace")
    expect = None
    m = re.match(r"^#\s*expect:\s*(\d+):(\d+):\s*(.*?)\s*$", first)
    if m:
        expect = (int(m.group(1)), int(m.group(2)), m.group(3))
    elif name != "empty.yml":
        return ["no '# expect: LINE:COL: text' line"], "", "", 0.0
    problems = []
    out = err = ""
    elapsed = 0.0
    for command in ("validate", "run"):
        start = time.monotonic()
        p = subprocess.run([pacer, command, path], capture_output=True, text=True,
                           errors="replace", timeout=30)
        elapsed = max(elapsed, time.monotonic() - start)
        out, err = p.stdout, p.stderr
        if p.returncode != 2:
            problems.append("%s: exit code %d, expected 2" % (command, p.returncode))
        if out.strip():
            problems.append("%s: printed to stdout: %r" % (command, out[:200]))
        if expect:
            loc = "%s:%d:%d:" % (path, expect[0], expect[1])
            if loc not in err:
                problems.append("%s: stderr lacks %r" % (command, loc))
            if expect[2] not in err:
                problems.append("%s: stderr lacks %r" % (command, expect[2]))
        elif "empty" not in err:
            problems.append("%s: no message about the empty file" % command)
        if elapsed > 1.0 * TIME_FACTOR:
            problems.append("%s: took %.2fs" % (command, elapsed))
        if "AddressSanitizer" in err or "runtime error:" in err:
            problems.append("%s: sanitizer report" % command)
    return problems, out, err, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", default=os.path.join(HERE, "..", "build", "pacer"))
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--time-factor", type=float, default=1.0,
                    help="multiply upper time bounds (e.g. 3 for sanitizer builds)")
    ap.add_argument("--no-rss", action="store_true",
                    help="skip peak RSS bounds (sanitizer builds)")
    ap.add_argument("filter", nargs="*", help="substrings of case names to run")
    opts = ap.parse_args()
    pacer = os.path.abspath(opts.pacer)
    global TIME_FACTOR, CHECK_RSS
    TIME_FACTOR = opts.time_factor
    CHECK_RSS = not opts.no_rss

    jobs = []
    # The examples in workflows/ are cases too: users copy them, so they must run.
    for d, fn in ((os.path.join(HERE, "cases"), "case"), (os.path.join(HERE, "bad"), "bad"),
                  (os.path.join(HERE, "..", "workflows"), "case")):
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith(".yml") and (not opts.filter or any(f in name for f in opts.filter)):
                jobs.append((fn, os.path.join(d, name)))
    servers = Servers()
    passed = failed = skipped = 0
    try:
        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            futs = {}
            for kind, path in jobs:
                if kind == "case":
                    futs[pool.submit(run_case, pacer, path, servers)] = path
                else:
                    futs[pool.submit(run_bad, pacer, path)] = path
            for fut in concurrent.futures.as_completed(futs):
                path = futs[fut]
                rel = os.path.relpath(path, os.path.join(HERE, ".."))
                try:
                    problems, out, err, elapsed = fut.result()
                except Exception as e:  # a broken case is a failure, not a crash
                    problems, out, err, elapsed = ["runner error: %r" % e], "", "", 0
                if problems is None:
                    skipped += 1
                    print("skip %s (sanitizer build)" % rel)
                elif problems:
                    failed += 1
                    print("FAIL %s (%.2fs)" % (rel, elapsed))
                    for pr in problems:
                        print("     " + pr)
                    print("     --- stdout ---\n" + "\n".join("     " + l for l in out.splitlines()[-20:]))
                    print("     --- stderr ---\n" + "\n".join("     " + l for l in err.splitlines()[-30:]))
                else:
                    passed += 1
                    print("ok   %s (%.2fs)" % (rel, elapsed))
                sys.stdout.flush()
    finally:
        servers.stop()
    print("%d passed, %d failed%s" % (passed, failed,
                                      ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
