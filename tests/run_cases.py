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
    # stderr-nl: a\\n  b              ... the same, with \\n standing for a newline
                                      (lines that must follow each other)
    # not-stderr: text                stderr must not contain text
    # time: < 1.5                     wall-time bound in seconds (repeatable: < and >)
    # max-rss: 40                     peak RSS bound in MiB (not with --no-rss:
                                      sanitizer builds use far more memory)
    # signal: INT 0.5                 send SIGINT (or TERM) 0.5 s after pacer
                                      has installed its handler for it
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
                                      that loads libasan or libtsan), e.g. under
                                      ulimit -v, which a sanitizer's shadow memory
                                      cannot live with
    # skip-if: tsan                   skip the case on a ThreadSanitizer build only:
                                      TSan runs a signal handler only when the thread
                                      calls into libc or synchronises, which a loop
                                      blocked inside one call never does
    # fdcheck: yes                    when pacer exits it holds no descriptor beyond
                                      what a trivial run holds and has no unreaped
                                      child (tests/fdcheck.c, preloaded; see
                                      tests/torture.py)

In args, env and expectations, {dir} is the case directory, {tmp} a fresh
temporary directory, {pacer} the binary under test, {pacer_dir} the real
path of its directory (where a build tree keeps the bundled plugins) and
{http} the fixture server's base URL. The examples in workflows/ are run as cases too.

tests/bad/NAME.yml are invalid workflows whose first line is
`# expect: LINE:COL: text`: `pacer validate` and `pacer run` must both exit 2,
print FILE:LINE:COL and the text, run nothing, and finish in well under a
second. empty.yml is the empty file.

Every case gets PACER_TIME_FACTOR=F in its environment (--time-factor), so
timing bounds inside a workflow (an assert on a duration) can be scaled like
the `# time: <` bounds: `steps.x.duration_ms < 150 * tonumber(env.PACER_TIME_FACTOR)`.

--repeat N runs each selected case N times. --cases-from FILE runs exactly the cases named in FILE (one name a line,
without .yml; `#` starts a comment); scripts/test uses it with
tests/contention.txt for the contention pass (the timing- and
cancellation-sensitive cases again, while CPU hogs keep every core busy).

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
            "server": None, "max_rss": None, "report": None, "skip_if": [],
            "fdcheck": False}
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
            elif key == "stderr-nl":
                spec["stderr"].append(val.replace("\\n", "\n"))
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
            elif key == "fdcheck":
                spec["fdcheck"] = val == "yes"
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
STATE_HOME = None  # XDG_STATE_HOME of every case: one per invocation (main)
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


def sanitizer_libs(pacer):
    """The libraries ldd lists for the binary (a sanitizer build loads its
    runtime: libasan/libubsan, or libtsan)."""
    try:
        return subprocess.run(["ldd", pacer], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def is_sanitizer_build(pacer):
    """Whether the binary loads a sanitizer runtime."""
    out = sanitizer_libs(pacer)
    return "libasan" in out or "libubsan" in out or "libtsan" in out


def is_tsan_build(pacer):
    return "libtsan" in sanitizer_libs(pacer)


def default_signals():
    """In the child, before exec: SIGINT, SIGTERM and SIGHUP get their default
    dispositions back, so the cases see what a terminal or cron gives pacer
    even when the suite itself was started with them ignored (a background
    job, nohup)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def wait_until_caught(pid, sig, limit):
    """Waits (at most limit seconds) until process pid catches sig, as its
    /proc/PID/status SigCgt mask shows: a signal sent before pacer installed
    its handlers kills it with the default action, which is not what a
    `# signal:` case tests (on a loaded machine start-up can take longer
    than the case's delay). Returns when the process is gone, or at the
    limit (a wrapper such as GNU time never catches it: the signal is then
    sent as before)."""
    deadline = time.monotonic() + limit
    bit = 1 << (int(sig) - 1)
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        if int(line.split()[1], 16) & bit:
                            return
                        break
                    if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                        return
        except OSError:
            return
        time.sleep(0.002)


class FdCheck:
    """tests/fdcheck.c, built once, and the descriptors a trivial run of
    this pacer still holds at exit (the baseline every case may hold)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.dir = None
        self.so = None
        self.baseline = None

    def get(self, pacer):
        import torture  # tests/torture.py: the same checks
        with self.lock:
            if self.so is None:
                self.dir = tempfile.mkdtemp(prefix="pacer-fdcheck-")
                self.so = torture.build_fdcheck(self.dir)

                class Opts:
                    pass
                opts = Opts()
                opts.pacer = pacer
                self.baseline = torture.measure_baseline(opts, self.so, self.dir)
            return self.so, self.baseline

    def env(self, pacer, tmp):
        so, _ = self.get(pacer)
        return {"LD_PRELOAD": so, "PACER_FDCHECK_OUT": os.path.join(tmp, "fdcheck"),
                "ASAN_OPTIONS": "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")}

    def problems(self, pacer, tmp, code):
        import torture
        _, baseline = self.get(pacer)
        rec = torture.read_fdcheck(os.path.join(tmp, "fdcheck"))
        if rec is None:
            return ["fdcheck: pacer exited without running its destructors"] if code >= 0 else []
        out = []
        extra = torture.fd_kinds(rec.get("fds", "")) - baseline
        if extra:
            out.append("descriptors open at exit beyond a trivial run's: %s (all: %s)"
                       % (dict(extra), rec.get("fds")))
        if rec.get("children"):
            out.append("children not reaped at exit: %s" % rec["children"])
        return out

    def stop(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


FDCHECK = FdCheck()


def run_case(pacer, path, servers):
    """Runs one case in a fresh {tmp}, removed afterwards (thousands of runs
    a day otherwise fill /tmp). Returns (None, ...) for a skipped case."""
    skip_if = parse_header(path)["skip_if"]
    if ("sanitizer" in skip_if and is_sanitizer_build(pacer)) or \
            ("tsan" in skip_if and is_tsan_build(pacer)):
        return None, "", "", 0.0
    tmp = tempfile.mkdtemp(prefix="pacer-case-")
    try:
        return run_case_in(pacer, path, servers, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_case_in(pacer, path, servers, tmp):
    spec = parse_header(path)
    ctx = {"dir": os.path.dirname(path), "tmp": tmp, "pacer": pacer,
           "pacer_dir": os.path.realpath(os.path.dirname(pacer))}
    for kind in (spec["server"] or "").split():
        ctx.update(servers.get(kind))
    env = dict(os.environ)
    # Every run appends to the run history ($XDG_STATE_HOME/pacer/): the
    # cases' runs go to one temporary directory of this invocation's, not
    # to the user's (history.yml sets its own).
    env["XDG_STATE_HOME"] = STATE_HOME
    env.update({k: subst(v, ctx) for k, v in spec["env"].items()})
    env["NO_COLOR"] = "1"
    env["PACER_TIME_FACTOR"] = "%g" % TIME_FACTOR
    if spec["fdcheck"]:
        env.update(FDCHECK.env(pacer, tmp))
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
                         text=True, errors="replace", preexec_fn=default_signals)
    if spec["signal"]:
        sig, after = spec["signal"]
        wait_until_caught(p.pid, sig, 10.0 * TIME_FACTOR)
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
    if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err \
            or "WARNING: ThreadSanitizer" in err:
        problems.append("sanitizer report")
    if spec["fdcheck"]:
        problems += FDCHECK.problems(pacer, tmp, p.returncode)
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
        if "AddressSanitizer" in err or "runtime error:" in err or "ThreadSanitizer" in err:
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
    ap.add_argument("--cases-from", metavar="FILE",
                    help="run exactly the cases named in FILE (one a line, # comments)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each selected case N times (races show up more often)")
    ap.add_argument("filter", nargs="*", help="substrings of case names to run")
    opts = ap.parse_args()
    pacer = os.path.abspath(opts.pacer)
    global TIME_FACTOR, CHECK_RSS, STATE_HOME
    TIME_FACTOR = opts.time_factor
    STATE_HOME = tempfile.mkdtemp(prefix="pacer-state-")
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
    if opts.cases_from:
        with open(opts.cases_from) as f:
            wanted = [l.split("#")[0].strip() for l in f]
        wanted = [w for w in wanted if w]
        by_name = {os.path.basename(p)[:-4]: (k, p) for k, p in jobs}
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            print("%s names cases that do not exist: %s" % (opts.cases_from, " ".join(unknown)))
            return 1
        jobs = [by_name[w] for w in wanted]
    jobs = jobs * max(1, opts.repeat)
    # With --repeat, instances of one case never overlap: cases look for
    # their own processes by name (pgrep) and would count each other's.
    locks = {path: threading.Lock() for _, path in jobs}

    def serially(fn, path, *args):
        with locks[path]:
            return fn(*args)

    servers = Servers()
    passed = failed = skipped = 0
    try:
        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            futs = {}
            for kind, path in jobs:
                if kind == "case":
                    futs[pool.submit(serially, run_case, path, pacer, path, servers)] = path
                else:
                    futs[pool.submit(serially, run_bad, path, pacer, path)] = path
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
        FDCHECK.stop()
        shutil.rmtree(STATE_HOME, ignore_errors=True)
    print("%d passed, %d failed%s" % (passed, failed,
                                      ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
