#!/usr/bin/env python3
"""Cancellation torture test: random workflows whose HTTP requests, programs
and Lua tasks are cancelled at random moments, run through the real binary
against local servers, each checked for the promises that matter when
things are cut short:

  - no crash: the exit code is one pacer documents (0, 1, 3, 4, or 130 /
    143 / 129 when this harness sent SIGINT / SIGTERM / SIGHUP), never an
    abort or a death by signal, and no sanitizer report;
  - the reports are written and valid: the JSON report parses, says
    finished and carries the process's exit code; the JUnit report parses;
  - nothing leaks: when pacer exits, it holds no descriptor beyond what a
    trivial run holds (seen from inside by tests/fdcheck.c, preloaded) and
    has no unreaped child; no process it started (each run's processes carry
    a tag in their environment) and no pacer is left; every program it
    started inherited only stdin, stdout and stderr;
  - nothing hangs: each run ends within its workflow deadline plus a margin.

What is cancelled, and how: step timeouts from 0 to 50 ms, group timeouts,
the workflow deadline, fail_fast siblings (for_each, gather, pacer.gather),
pacer.timeout, pacer.spawn tasks never waited for, connection limits
(defaults.http.max_connections / max_connections_per_host) that keep
requests queued, a listener that never accepts (requests stuck connecting or
waiting for an answer), refused connections, dropped connections, and
SIGINT, SIGTERM and SIGHUP sent at a random moment once pacer has installed
its handlers (its `-v` "run ... of ..." line).

Every run has its own seed; a failure prints the seed and the command that
replays it (`tests/torture.py --pacer P --seed N`), and keeps the workflow
file. The workflow is a function of the seed alone; the moments at which
things happen are not, so a replay may need a few repetitions
(`--repeat 20`).

Usage:
  tests/torture.py --pacer build/pacer [--budget 75] [--jobs 2]
  tests/torture.py --pacer build-asan/pacer --time-factor 3 --budget 40
  tests/torture.py --pacer build/pacer --seed 123456 [--repeat 20] [--show]
                   [--wrap 'strace -f -o /tmp/st']

Prints one line per failing run, a summary (runs, steps by action and by
outcome, exit codes) and exits 1 if any run failed.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SIGNALS = {"INT": (signal.SIGINT, 130), "TERM": (signal.SIGTERM, 143),
           "HUP": (signal.SIGHUP, 129)}
# Words that only appear in stderr when something went badly wrong.
BAD_STDERR = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
              "unprotected error", "Assertion", "out of memory", "event loop is blocked",
              "panic")


# ------------------------------------------------------------------ servers

class Servers:
    """The fixture server (tests/fixture_server.py) and two local endpoints
    of our own: a listener that never accepts (its backlog fills, so later
    connections stay in SYN_SENT: cancelling while connecting) and a closed
    port (refused at once)."""

    def __init__(self):
        self.fixture = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fixture_server.py"), "--mode", "http"],
            stdout=subprocess.PIPE, text=True)
        line = self.fixture.stdout.readline().split()
        if not line:
            raise RuntimeError("the fixture server did not start")
        self.base = line[0]
        self.hole = socket.socket()
        self.hole.bind(("127.0.0.1", 0))
        self.hole.listen(0)
        self.blackhole = "http://127.0.0.1:%d" % self.hole.getsockname()[1]
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.refused = "http://127.0.0.1:%d" % s.getsockname()[1]
        s.close()  # nothing listens there now

    def stop(self):
        self.fixture.terminate()
        try:
            self.fixture.wait(5)
        except subprocess.TimeoutExpired:
            self.fixture.kill()
        self.hole.close()


# ---------------------------------------------------------------- generator

def q(s):
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(s)


class Gen:
    """Writes one random workflow (YAML text) from a seed. Counts what it
    put in, so the summary can say how many steps of each kind ran."""

    def __init__(self, seed, urls, tmp):
        self.r = random.Random(seed)
        self.urls = urls
        self.tmp = tmp
        self.lines = []

    # -- pieces

    def url(self, cancellable=True):
        r, u = self.r, self.urls
        choices = [
            (6, lambda: "%s/delay?ms=%d" % (u.base, r.randint(0, 80))),
            (3, lambda: "%s/status/%d" % (u.base, r.choice([200, 200, 204, 404, 503]))),
            (2, lambda: "%s/json/t" % u.base),
            (2, lambda: "%s/slow-body?ms=%d" % (u.base, r.randint(10, 100))),
            (1, lambda: "%s/big?bytes=%d" % (u.base, r.choice([1000, 100000, 600000]))),
            (1, lambda: "%s/redirect?n=%d" % (u.base, r.randint(1, 3))),
            (1, lambda: "%s/drop" % u.base),
            (1, lambda: "%s/truncate" % u.base),
            (1, lambda: "%s/" % u.refused),
        ]
        if cancellable:  # only where something will cut the wait short
            choices.append((2, lambda: "%s/never" % u.blackhole))
        total = sum(w for w, _ in choices)
        x = r.uniform(0, total)
        for w, f in choices:
            x -= w
            if x <= 0:
                return f()
        return choices[0][1]()

    def timeout_ms(self):
        return self.r.choice([0, 1, 2, 5, 10, 20, 30, 50, self.r.randint(0, 50)])

    def program(self):
        """(argv, may outlive a short wait)."""
        r = self.r
        k = r.randint(0, 9)
        if k <= 2:
            return ["sleep", "%.3f" % r.uniform(0, 0.08)]
        if k == 3:
            return ["sh", "-c", "i=0; while [ $i -lt %d ]; do i=$((i+1)); done" % r.randint(100, 20000)]
        if k == 4:  # a background grandchild in the same group
            return ["sh", "-c", "sleep %.2f & sleep %.3f; wait" % (r.uniform(0.05, 0.5), r.uniform(0, 0.05))]
        if k == 5:
            return ["sh", "-c", "echo out; echo err >&2; exit %d" % r.choice([0, 0, 1, 3])]
        if k == 6:  # what descriptors did this child inherit?
            return ["sh", "-c", 'exec ls /proc/self/fd > "$1/fds.$$"', "sh", self.tmp]
        if k == 7:
            return ["sh", "-c", "head -c %d /dev/zero" % r.choice([10, 5000, 200000])]
        if k == 8 and r.random() < 0.25:  # ignores SIGTERM: SIGKILL after the grace
            return ["sh", "-c", "trap '' TERM; sleep %.2f" % r.uniform(0.05, 0.3)]
        return ["sleep", "0.%02d" % r.randint(0, 30)]

    def emit(self, ind, text):
        self.lines.append("  " * ind + text)

    def modifiers(self, ind, leaf, http=False):
        r = self.r
        if leaf and r.random() < 0.55:
            self.emit(ind, "timeout: %dms" % self.timeout_ms())
        elif not leaf and r.random() < 0.3:
            self.emit(ind, "timeout: %dms" % r.randint(0, 150))
        if leaf and r.random() < 0.15:
            on = '[timeout, network, error]' if not http else '[timeout, network, 503]'
            self.emit(ind, "retry: { attempts: %d, backoff: 1ms, on: %s }" % (r.randint(2, 3), on))
        if r.random() < 0.5:
            self.emit(ind, "continue_on_error: true")

    # A leaf is written at indentation ind after `first` ("- " for an item
    # of its own, "" inside a for_each); its modifiers align with its key.
    @staticmethod
    def key_ind(ind, first):
        return ind + 1 if first else ind

    def http_step(self, ind, first):
        self.emit(ind, first + "http: { get: %s }" % q(self.url()))
        self.modifiers(self.key_ind(ind, first), True, http=True)

    def exec_step(self, ind, first):
        argv = self.program()
        if self.r.random() < 0.2 and argv[0] == "sh":
            self.emit(ind, first + "shell: %s" % q(argv[2]) if len(argv) == 3 else
                      first + "exec: %s" % json.dumps(argv))
        else:
            self.emit(ind, first + "exec: %s" % json.dumps(argv))
        self.modifiers(self.key_ind(ind, first), True)

    def lua_step(self, ind, first):
        r = self.r
        fns = []
        for _ in range(r.randint(2, 8)):
            k = r.randint(0, 9)
            url = self.url()
            if k <= 2:
                fns.append("function() return pacer.http.get(%s).status end" % q(url))
            elif k == 3:
                fns.append("function() return pacer.http.request{method = 'GET', url = %s, "
                           "timeout = %.3f}.status end" % (q(url), r.uniform(0, 0.05)))
            elif k == 4:
                fns.append("function() pacer.sleep(%.3f) return 0 end" % r.uniform(0, 0.05))
            elif k == 5:
                argv = self.program()
                fns.append("function() local res = pacer.exec(%s, {log = false}) "
                           "return res and res.exit_code end"
                           % ("{" + ", ".join(q(a) for a in argv) + "}"))
            elif k == 6:
                fns.append("function() pacer.sleep(%.3f) error('boom') end" % r.uniform(0, 0.03))
            elif k == 7:
                fns.append("function() return pacer.timeout(%.3f, pacer.http.get, %s).status end"
                           % (r.uniform(0, 0.05), q(url)))
            elif k == 8:  # never waited for: cancelled when the step ends
                fns.append("function() pacer.spawn(function() return pacer.http.get(%s) end) "
                           "return 0 end" % q(url))
            else:
                fns.append("function() local ok = pcall(pacer.timeout, %.3f, pacer.sleep, 1) "
                           "return ok and 1 or 0 end" % r.uniform(0, 0.03))
        conc = r.choice(["nil", "1", "2", "4"])
        ff = r.choice(["true", "false"])
        call = "pacer.gather({%s}, {concurrency = %s, fail_fast = %s})" % (", ".join(fns), conc, ff)
        self.emit(ind, first + "lua: |")
        k = self.key_ind(ind, first)
        if r.random() < 0.4:
            self.emit(k + 1, "local ok, res = pcall(function() return %s end)" % call)
            self.emit(k + 1, "return ok and #res or tostring(res)")
        else:
            self.emit(k + 1, "return #%s" % call)
        self.modifiers(k, True)

    def leaf(self, ind, first):
        k = self.r.random()
        if k < 0.45:
            self.http_step(ind, first)
        elif k < 0.75:
            self.exec_step(ind, first)
        elif k < 0.93:
            self.lua_step(ind, first)
        else:
            self.emit(ind, first + "sleep: %dms" % self.r.randint(0, 30))
            self.modifiers(self.key_ind(ind, first), True)

    def block(self, ind, depth):
        r = self.r
        k = r.random()
        if depth >= 3 or k < 0.3:
            self.leaf(ind, "- ")
        elif k < 0.6:  # a fan-out of one leaf
            self.emit(ind, "- for_each: ${{ range(1, %d) }}" % r.randint(1, 40))
            if r.random() < 0.5:
                self.emit(ind + 1, "concurrency: %d" % r.randint(1, 8))
            if r.random() < 0.5:
                self.emit(ind + 1, "fail_fast: %s" % r.choice(["true", "false"]))
            self.leaf(ind + 1, "")
        else:
            kind = r.choice(["gather", "gather", "steps"])
            self.emit(ind, "- %s:" % kind)
            for _ in range(r.randint(1, 4)):
                self.block(ind + 2, depth + 1)
            if kind == "gather" and r.random() < 0.5:
                self.emit(ind + 1, "fail_fast: %s" % r.choice(["true", "false"]))
            self.modifiers(ind + 1, False)

    def workflow(self, name):
        r = self.r
        self.emit(0, "name: %s" % name)
        # Every run ends: a deadline, sometimes a short one that cuts it.
        self.emit(0, "timeout: %dms" % r.choice([3000, 3000, 3000, r.randint(20, 400)]))
        if r.random() < 0.6:
            self.emit(0, "defaults:")
            self.emit(1, "http:")
            k = r.randint(1, 3)
            if k & 1:
                self.emit(2, "max_connections: %d" % r.randint(1, 6))
            if k & 2:
                self.emit(2, "max_connections_per_host: %d" % r.randint(1, 4))
            if r.random() < 0.3:
                self.emit(1, "timeout: %dms" % r.randint(0, 50))
        self.emit(0, "steps:")
        for _ in range(r.randint(1, 5)):
            self.block(1, 0)
        self.emit(0, "finally:")
        self.emit(1, "- log: \"outcome ${{ workflow.outcome }}\"")
        self.emit(1, '- exec: ["sh", "-c", "exec ls /proc/self/fd > \\"$1/fds.final.$$\\"", "sh", %s]'
                  % q(self.tmp))
        self.emit(2, "continue_on_error: true")
        return "\n".join(self.lines) + "\n"


# ------------------------------------------------------------------ checks

def being_killed(pid):
    """Whether SIGKILL is pending for pid (said with a process left behind:
    pacer waits for a group it SIGKILLed to be gone, for a while)."""
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & (1 << 8):
                    return True
    except OSError:
        return True  # gone
    return False


def tagged_processes(tag):
    """Processes whose environment holds PACER_TORTURE_TAG=tag: pacer and
    everything it started (unless a program cleared its environment)."""
    needle = ("PACER_TORTURE_TAG=%s" % tag).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if needle in f.read().split(b"\0"):
                    with open("/proc/%s/cmdline" % pid, "rb") as g:
                        cmd = g.read().replace(b"\0", b" ").decode("utf-8", "replace")
                    found.append("%s %s%s" % (pid, cmd.strip(),
                                              " (SIGKILL pending)" if being_killed(pid) else ""))
        except OSError:
            continue
    return found


def fd_kinds(spec):
    """'4:pipe:[123],5:socket:[9]' -> Counter of kinds ('pipe', 'socket',
    'anon_inode:[eventpoll]', or the path)."""
    kinds = collections.Counter()
    for item in filter(None, spec.split(",")):
        fd, _, target = item.partition(":")
        kind = target.split(":[")[0] if ":[" in target else target
        kinds[kind] += 1
    return kinds


def read_fdcheck(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l]
    if not lines:
        return None
    rec = {}
    for part in lines[-1].split(" "):
        k, _, v = part.partition("=")
        rec[k] = v
    return rec


class Run:
    def __init__(self, seed, opts, servers, baseline, fdcheck_so, workdir):
        self.seed = seed
        self.opts = opts
        self.servers = servers
        self.baseline = baseline
        self.fdcheck_so = fdcheck_so
        self.dir = tempfile.mkdtemp(prefix="t%d-" % seed, dir=workdir)
        self.problems = []
        self.stats = None
        self.code = None
        self.sig = None

    def go(self):
        r = random.Random(self.seed ^ 0x5eed)
        text = Gen(self.seed, self.servers, self.dir).workflow("torture-%d" % self.seed)
        wf = os.path.join(self.dir, "torture.yml")
        with open(wf, "w") as f:
            f.write(text)
        if self.opts.show:
            sys.stdout.write(text)
        # One run in three gets a signal, at a random moment after pacer is ready.
        if not self.opts.no_signals and r.random() < 0.33:
            self.sig = r.choice(sorted(SIGNALS))
            delay = r.uniform(0, 0.3)
        tag = "%d-%d-%d" % (os.getpid(), self.seed, random.getrandbits(32))
        env = dict(os.environ)
        env.update({"NO_COLOR": "1", "PACER_TORTURE_TAG": tag,
                    "PACER_FDCHECK_OUT": os.path.join(self.dir, "fdcheck"),
                    "LD_PRELOAD": self.fdcheck_so})
        # The preloaded library comes before the ASan runtime in the list.
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:" + env.get("ASAN_OPTIONS", "")
        json_rep = os.path.join(self.dir, "report.json")
        junit_rep = os.path.join(self.dir, "report.xml")
        cmd = self.opts.wrap + [self.opts.pacer, "run", wf, "-v", "--report",
                                "json:" + json_rep, "--report", "junit:" + junit_rep]
        start = time.monotonic()
        # A crash leaves a core file in the run's directory (core_pattern
        # permitting), for the backtrace printed with the failure.
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd=self.dir,
                             preexec_fn=child_setup(self.opts.backtraces > 0))
        err_lines = []
        ready = threading.Event()

        def read_err():
            for line in p.stderr:
                line = line.decode("utf-8", "replace")
                err_lines.append(line)
                if " run " in line and " of torture-" in line:
                    ready.set()
            ready.set()  # EOF: pacer is gone

        out_chunks = []

        def read_out():
            out_chunks.append(p.stdout.read())

        t = threading.Thread(target=read_err, daemon=True)
        t.start()
        t_out = threading.Thread(target=read_out, daemon=True)
        t_out.start()
        limit = 30.0 * self.opts.time_factor
        if self.sig:
            # Not a sleep for synchronisation: the signal is sent at a random
            # moment on purpose, counted from the line pacer prints once its
            # handlers are installed.
            ready.wait(limit)
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(SIGNALS[self.sig][0])
        try:
            p.wait(limit)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.problems.append("hung: still running after %.0f s (killed)" % limit)
        # The pipes reach EOF when pacer is gone, unless something it started
        # holds them (a leak the checks below report).
        t.join(10)
        t_out.join(10)
        out = b"".join(out_chunks)
        elapsed = time.monotonic() - start
        err = "".join(err_lines)
        self.code = p.returncode
        self.check(p.returncode, err, json_rep, junit_rep, tag, elapsed)
        if self.problems and p.returncode is not None and p.returncode < 0:
            self.backtrace = backtrace(self.opts.pacer, self.dir)
            if self.backtrace:
                self.opts.backtraces -= 1  # each costs a core dump and a gdb run
        if self.problems:
            keep = os.path.join(self.opts.failures, "seed-%d" % self.seed)
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(self.dir, keep)
            with open(os.path.join(keep, "stderr.txt"), "w") as f:
                f.write(err)
            with open(os.path.join(keep, "stdout.txt"), "wb") as f:
                f.write(out)
            self.kept = keep
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, code, err, json_rep, junit_rep, tag, elapsed):
        pr = self.problems
        allowed = {0, 1, 3, 4}
        if self.sig:
            allowed.add(SIGNALS[self.sig][1])
        if code is None or code < 0:
            name = signal.Signals(-code).name if code and code < 0 else "?"
            pr.append("killed by %s (exit %s)" % (name, code))
        elif code == 134:
            pr.append("aborted (exit 134)")
        elif code not in allowed:
            pr.append("exit code %d, expected one of %s" % (code, sorted(allowed)))
        for w in BAD_STDERR:
            if w in err:
                line = next((l for l in err.splitlines() if w in l), w)
                pr.append("stderr: %s" % line.strip()[:200])
        # Reports.
        try:
            with open(json_rep) as f:
                rep = json.load(f)
            run = rep.get("run", {})
            if not run.get("finished"):
                pr.append("json report: not finished")
            if code is not None and code >= 0 and run.get("exit_code") != code:
                pr.append("json report: exit_code %r, the process exited %d"
                          % (run.get("exit_code"), code))
            self.stats = rep
        except FileNotFoundError:
            pr.append("no json report")
        except (OSError, ValueError) as e:
            pr.append("json report: %s" % e)
        try:
            ET.parse(junit_rep)
        except FileNotFoundError:
            pr.append("no junit report")
        except (OSError, ET.ParseError) as e:
            pr.append("junit report: %s" % e)
        # Descriptors and children, seen from inside pacer at exit.
        rec = read_fdcheck(os.path.join(self.dir, "fdcheck"))
        if rec is None:
            if code is not None and code >= 0:
                pr.append("fdcheck: pacer exited without running its destructors")
        else:
            extra = fd_kinds(rec.get("fds", "")) - self.baseline
            if extra:
                pr.append("descriptors open at exit beyond a trivial run's: %s (all: %s)"
                          % (dict(extra), rec.get("fds")))
            if rec.get("children"):
                pr.append("children not reaped at exit: %s" % rec["children"])
        # What the programs inherited.
        for fn in sorted(os.listdir(self.dir)):
            if fn.startswith("fds."):
                with open(os.path.join(self.dir, fn)) as f:
                    fds = f.read().split()
                if fds and sorted(fds, key=int) != ["0", "1", "2", "3"]:
                    pr.append("a program inherited descriptors: ls /proc/self/fd gave %s"
                              % " ".join(fds))
        # Processes left behind: pacer is gone, so must be everything it started.
        left = tagged_processes(tag)
        if left:
            pr.append("processes left behind: %s" % "; ".join(left[:5]))
            for line in left:
                try:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
                except OSError:
                    pass
        bound = (3.0 + 5.0) * self.opts.time_factor  # deadline + SIGKILL grace + margin
        if elapsed > bound:
            pr.append("took %.1f s, more than %.1f s" % (elapsed, bound))


def child_setup(cores):
    """What pacer's process does before exec: the signals this harness sends
    get their default dispositions back (a harness started with them
    ignored, as a background job or under nohup, must not make pacer ignore
    them too: pacer leaves an ignored SIGHUP alone), and with `cores`, core
    dumps are on (the suite's own limit is usually 0)."""
    def setup():
        for sig in SIGNALS.values():
            signal.signal(sig[0], signal.SIG_DFL)
        if cores:
            import resource
            resource.setrlimit(resource.RLIMIT_CORE,
                               (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    return setup


def backtrace(pacer, d):
    """The function names of the crashing thread's stack, from a core file in
    d (gdb), or None. The core is deleted: it is large and machine-bound."""
    cores = [os.path.join(d, f) for f in os.listdir(d) if f == "core" or f.startswith("core.")]
    gdb = shutil.which("gdb")
    if not cores or not gdb:
        for c in cores:
            os.unlink(c)
        return None
    try:
        out = subprocess.run([gdb, "-batch", "-nx", "-ex", "bt 25", pacer, cores[0]],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        for c in cores:
            os.unlink(c)
    names = []
    for line in out.splitlines():
        m = re.match(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([A-Za-z_][\w.]*)", line)
        if m:
            names.append(m.group(1))
    return " < ".join(names) or None


def count_steps(rep, totals):
    for s in rep.get("steps", []):
        if s.get("kind") == "step":
            totals["action:" + str(s.get("action"))] += 1
            totals["outcome:" + str(s.get("outcome"))] += 1


def build_fdcheck(workdir):
    so = os.path.join(workdir, "fdcheck.so")
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o", so,
                    os.path.join(HERE, "fdcheck.c")], check=True)
    return so


def measure_baseline(opts, so, workdir):
    """The descriptors a trivial run still holds at exit (libuv's signal
    pipe, closed by its own destructor later): what every run may hold."""
    d = tempfile.mkdtemp(dir=workdir)
    wf = os.path.join(d, "trivial.yml")
    with open(wf, "w") as f:
        f.write("steps:\n  - log: hi\n")
    env = dict(os.environ, PACER_FDCHECK_OUT=os.path.join(d, "fdcheck"), LD_PRELOAD=so)
    env["ASAN_OPTIONS"] = "verify_asan_link_order=0:" + env.get("ASAN_OPTIONS", "")
    subprocess.run([opts.pacer, "run", wf], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
    rec = read_fdcheck(os.path.join(d, "fdcheck"))
    if rec is None:
        raise RuntimeError("fdcheck.so wrote nothing for a trivial run (is %s named pacer?)"
                           % opts.pacer)
    return fd_kinds(rec.get("fds", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pacer", default=os.path.join(HERE, "..", "build", "pacer"))
    ap.add_argument("--budget", type=float, default=75.0,
                    help="seconds to keep starting runs (default 75)")
    ap.add_argument("--runs", type=int, default=0, help="stop after this many runs")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, help="run only this seed (replay a failure)")
    ap.add_argument("--repeat", type=int, default=1, help="with --seed: run it N times")
    ap.add_argument("--first-seed", type=int,
                    help="seeds are FIRST, FIRST+1, ... (default: from the clock)")
    ap.add_argument("--time-factor", type=float, default=1.0,
                    help="multiply time bounds (3 for sanitizer builds)")
    ap.add_argument("--no-signals", action="store_true", help="send no signals")
    ap.add_argument("--show", action="store_true", help="print each workflow")
    ap.add_argument("--backtraces", type=int, default=5, metavar="N",
                    help="print where a crashed pacer was (core dump + gdb) for the "
                         "first N crashes (default 5; 0: never)")
    ap.add_argument("--failures", default=None,
                    help="where failing runs are kept (default: a directory in /tmp)")
    ap.add_argument("--wrap", default="",
                    help="a command line to run pacer under, for a replay: "
                         "'strace -f -o /tmp/st -e trace=epoll_ctl,close'")
    opts = ap.parse_args()
    opts.wrap = shlex.split(opts.wrap)
    opts.pacer = os.path.abspath(opts.pacer)
    if not os.access(opts.pacer, os.X_OK):
        sys.exit("torture: no binary at %s" % opts.pacer)
    workdir = tempfile.mkdtemp(prefix="pacer-torture-")
    if opts.failures is None:
        opts.failures = tempfile.mkdtemp(prefix="pacer-torture-failures-")
    os.makedirs(opts.failures, exist_ok=True)

    if opts.seed is not None:
        seeds = iter([opts.seed] * opts.repeat)
    else:
        first = opts.first_seed if opts.first_seed is not None else int(time.time()) % 1000000 * 1000
        seeds = iter(range(first, first + 10**9))
    servers = Servers()
    totals = collections.Counter()
    codes = collections.Counter()
    failed = []
    nruns = 0
    start = time.monotonic()
    try:
        so = build_fdcheck(workdir)
        baseline = measure_baseline(opts, so, workdir)
        lock = threading.Lock()

        def one(seed):
            run = Run(seed, opts, servers, baseline, so, workdir)
            try:
                run.go()
            except Exception as e:  # a broken harness is a failure, not a pass
                run.problems.append("harness error: %r" % e)
            return run

        with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
            pending = set()

            def more():
                if opts.seed is None and time.monotonic() - start > opts.budget:
                    return False
                if opts.runs and nruns + len(pending) >= opts.runs:
                    return False
                seed = next(seeds, None)
                if seed is None:
                    return False
                pending.add(pool.submit(one, seed))
                return True

            for _ in range(opts.jobs):
                more()
            while pending:
                done, _ = concurrent.futures.wait(pending,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for fut in done:
                    pending.discard(fut)
                    run = fut.result()
                    with lock:
                        nruns += 1
                        codes["%s%s" % (run.code, "/" + run.sig if run.sig else "")] += 1
                        if run.stats:
                            count_steps(run.stats, totals)
                        if run.problems:
                            failed.append(run)
                            print("FAIL seed %d%s: %s" % (run.seed,
                                                          " (SIG%s)" % run.sig if run.sig else "",
                                                          "; ".join(run.problems)))
                            if getattr(run, "backtrace", None):
                                print("     backtrace: %s" % run.backtrace)
                            print("     replay: %s --pacer %s --seed %d --repeat 20"
                                  % (os.path.relpath(__file__), opts.pacer, run.seed))
                            print("     kept: %s" % getattr(run, "kept", "?"))
                            sys.stdout.flush()
                    more()
    finally:
        servers.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - start
    actions = ", ".join("%s %d" % (k[7:], v) for k, v in sorted(totals.items())
                        if k.startswith("action:"))
    outcomes = ", ".join("%s %d" % (k[8:], v) for k, v in sorted(totals.items())
                         if k.startswith("outcome:"))
    print("torture: %d runs in %.0f s, %d steps (%s); outcomes: %s"
          % (nruns, elapsed, sum(v for k, v in totals.items() if k.startswith("action:")),
             actions, outcomes))
    print("torture: exit codes (/signal sent): %s"
          % ", ".join("%s x%d" % (k, v) for k, v in sorted(codes.items())))
    if failed:
        kinds = collections.Counter(r.problems[0].split(" (")[0].split(":")[0] for r in failed)
        print("torture: failures by first problem: %s"
              % ", ".join("%s x%d" % kv for kv in kinds.most_common()))
        print("torture: %d of %d runs FAILED; seeds: %s; kept in %s"
              % (len(failed), nruns, " ".join(str(r.seed) for r in failed), opts.failures))
        return 1
    shutil.rmtree(opts.failures, ignore_errors=True)
    print("torture: no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
