#!/usr/bin/env python3
"""Checks how pacer writes the files a user names: --report PATH and an
HTTP step's save_to (runner/base/outfile.c).

Usage: check_outfile.py --pacer PATH --http URL [SCENARIO...]

  devnull    reports and save_to into /dev/null: the run succeeds and
             /dev/null is still the character device 1,3 afterwards (as
             root, a rename over it would have replaced the system's
             /dev/null with a regular file)
  fifo       reports and save_to into FIFOs that have a reader: the reader
             gets the data, the FIFO stays a FIFO
  fifo_no_reader
             a report FIFO without a reader: exit 2 at once, nothing run; a
             save_to FIFO without a reader: the step errors at once (the
             loop is not blocked: it does not wait for the 20 s timeout)
  fifo_stalled
             save_to into a FIFO whose reader never reads: the writes wait
             (that is the reader's pace), and the watchdog, which sees a loop
             stuck in a callback, ends the run past its deadline (exit 4)
  symlink    reports and save_to through a symbolic link: the link stays a
             link, the file it points to is replaced atomically and keeps
             its mode; a link to nothing is refused (exit 2 for a report)
  regular    an existing regular file is replaced, keeps its mode, and no
             temporary file is left beside it
  stdout     --report json:/dev/stdout into a pipe, and into a file that
             already holds the run's `log` output (appended, not clobbered)
  dirs       missing parent directories of a report are created; a report
             path that cannot be written (a directory, a path through a
             regular file) is exit 2 before anything runs
  ci_recipe  the --report arguments of docs/cron-and-ci.md, as written,
             from a fresh working directory (reports/ does not exist)

Prints "ok SCENARIO" per scenario; exits 1 on failure.
"""
import json
import os
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import scenarios
from scenarios import check, write

PACER = None
HTTP = None


def workflow(tmp, save_to=None, marker=None, log=None):
    """A workflow that touches `marker` (proof that it ran), prints `log`
    and saves a response to `save_to`."""
    lines = ["steps:"]
    if marker:
        lines.append("  - exec: [touch, %s]" % json.dumps(marker))
    if log:
        lines.append("  - log: %s" % json.dumps(log))
    if save_to:
        lines.append("  - id: fetch")
        lines.append("    timeout: 20s")
        lines.append("    http: { get: %s, save_to: %s }" % (
            json.dumps(HTTP + "/delay?ms=0"), json.dumps(save_to)))
    if len(lines) == 1:
        lines.append("  - sleep: 0")
    path = os.path.join(tmp, "wf.yml")
    write(path, "\n".join(lines) + "\n")
    return path


def run(wf, args=(), cwd=None, stdout=subprocess.PIPE, timeout=60):
    cmd = [PACER, "run", wf, "--progress", "never"] + list(args)
    p = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=cwd,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def is_devnull():
    st = os.stat("/dev/null")
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def no_temp_files(d):
    left = [n for n in os.listdir(d) if ".pacer-" in n]
    check(not left, "temporary files left in %s: %s" % (d, left))


class Reader(threading.Thread):
    """Reads a FIFO to its end (opening it blocks until a writer comes)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.data = None
        self.opened = threading.Event()
        self.start()

    def run(self):
        # Open non-blocking (a reader may open a FIFO without a writer), so
        # the FIFO has a reader before pacer starts; then read to the end.
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.opened.set()
        os.set_blocking(fd, True)
        chunks = []
        # Until a writer has opened it, read() returns b"" (no writer yet):
        # wait for the first byte, then for the end.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            b = os.read(fd, 65536)
            if b:
                chunks.append(b)
            elif chunks:
                break
            else:
                time.sleep(0.01)
        os.close(fd)
        self.data = b"".join(chunks)


def restore_devnull():
    """Puts the null device back if a broken pacer replaced it (as root):
    every other process on the machine needs it."""
    if is_devnull() or os.geteuid() != 0:
        return
    tmp = "/dev/.null.pacer-test"
    os.mknod(tmp, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(tmp, 0o666)
    os.rename(tmp, "/dev/null")


def scenario_devnull(tmp):
    check(is_devnull(), "/dev/null is not the null device before the test")
    wf = workflow(tmp, save_to="/dev/null")
    try:
        code, out, err = run(wf, ["--report", "json:/dev/null", "--report", "html:/dev/null"])
        replaced = not is_devnull()
    finally:
        restore_devnull()
    check(not replaced, "/dev/null was replaced by something else (restored)")
    check(code == 0, "exit %d\n%s" % (code, err))


def scenario_fifo(tmp):
    rep, body = os.path.join(tmp, "report.fifo"), os.path.join(tmp, "body.fifo")
    os.mkfifo(rep)
    os.mkfifo(body)
    readers = [Reader(rep), Reader(body)]
    for r in readers:
        check(r.opened.wait(5), "reader did not open its FIFO")
    wf = workflow(tmp, save_to=body)
    code, out, err = run(wf, ["--report", "json:" + rep])
    check(code == 0, "exit %d\n%s" % (code, err))
    for r in readers:
        r.join(10)
    report = json.loads(readers[0].data)
    check(report["run"]["outcome"] == "ok", "report through the FIFO: %r" % report["run"])
    check(json.loads(readers[1].data) == {"delayed_ms": 0}, "body: %r" % readers[1].data)
    for p in (rep, body):
        check(stat.S_ISFIFO(os.lstat(p).st_mode), "%s is no longer a FIFO" % p)
    no_temp_files(tmp)


def scenario_fifo_no_reader(tmp):
    fifo = os.path.join(tmp, "lonely.fifo")
    os.mkfifo(fifo)
    marker = os.path.join(tmp, "ran")
    wf = workflow(tmp, marker=marker)
    t0 = time.monotonic()
    code, out, err = run(wf, ["--report", "json:" + fifo], timeout=10)
    check(code == 2, "report FIFO without a reader: exit %d\n%s" % (code, err))
    check("no process is reading" in err and "nothing was run" in err, "message: %s" % err)
    check(not os.path.exists(marker), "the workflow ran")
    wf = workflow(tmp, save_to=fifo)
    code, out, err = run(wf, timeout=10)
    check(code == 3, "save_to FIFO without a reader: exit %d\n%s" % (code, err))
    check("http.save_to:" in err and "no process is reading" in err, "message: %s" % err)
    check(time.monotonic() - t0 < 8, "waited for a reader")
    check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced")


def scenario_fifo_stalled(tmp):
    fifo = os.path.join(tmp, "stalled.fifo")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads
    try:
        wf = os.path.join(tmp, "wf.yml")
        write(wf, "timeout: 1s\nsteps:\n  - http: { get: %s, save_to: %s }\n" % (
            json.dumps(HTTP + "/big?bytes=4000000"), json.dumps(fifo)))
        t0 = time.monotonic()
        code, out, err = run(wf, timeout=30)
        took = time.monotonic() - t0
    finally:
        os.close(fd)
    check(code == 4, "exit %d, expected 4\n%s" % (code, err))
    check("event loop is blocked" in err, "not ended by the watchdog: %s" % err)
    check(took < 15, "took %.1f s" % took)


def scenario_symlink(tmp):
    real_rep, real_body = os.path.join(tmp, "real.json"), os.path.join(tmp, "real.body")
    for p in (real_rep, real_body):
        write(p, "old\n")
        os.chmod(p, 0o600)
    os.mkdir(os.path.join(tmp, "links"))
    link_rep, link_body = os.path.join(tmp, "links", "rep.json"), os.path.join(tmp, "links",
                                                                               "body")
    os.symlink("../real.json", link_rep)     # relative to the link's directory
    os.symlink(real_body, link_body)         # absolute
    wf = workflow(tmp, save_to=link_body)
    code, out, err = run(wf, ["--report", "json:" + link_rep])
    check(code == 0, "exit %d\n%s" % (code, err))
    for link, real in ((link_rep, real_rep), (link_body, real_body)):
        check(os.path.islink(link), "%s is no longer a symlink" % link)
        check(stat.S_IMODE(os.stat(real).st_mode) == 0o600, "%s lost its mode" % real)
    with open(real_rep, encoding="utf-8") as f:
        check(json.load(f)["run"]["outcome"] == "ok", "report not written through the link")
    with open(real_body, encoding="utf-8") as f:
        check(json.load(f) == {"delayed_ms": 0}, "body not written through the link")
    no_temp_files(tmp)
    no_temp_files(os.path.join(tmp, "links"))

    dangling = os.path.join(tmp, "dangling.json")
    os.symlink(os.path.join(tmp, "missing", "x.json"), dangling)
    marker = os.path.join(tmp, "ran")
    code, out, err = run(workflow(tmp, marker=marker), ["--report", "json:" + dangling])
    check(code == 2 and "does not exist" in err, "dangling link: exit %d\n%s" % (code, err))
    check(not os.path.exists(marker), "the workflow ran")
    check(os.path.islink(dangling), "the dangling link was replaced")
    code, out, err = run(workflow(tmp, save_to=dangling))
    check(code == 3 and "does not exist" in err, "save_to dangling: exit %d\n%s" % (code, err))
    check(os.path.islink(dangling) and not os.path.exists(os.path.join(tmp, "missing")),
          "save_to followed the dangling link")


def scenario_regular(tmp):
    rep, body = os.path.join(tmp, "run.json"), os.path.join(tmp, "body.json")
    for p in (rep, body):
        write(p, "old\n")
        os.chmod(p, 0o640)
    code, out, err = run(workflow(tmp, save_to=body), ["--report", "json:" + rep])
    check(code == 0, "exit %d\n%s" % (code, err))
    for p in (rep, body):
        st = os.lstat(p)
        check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640,
              "%s: mode %o" % (p, st.st_mode))
    with open(rep, encoding="utf-8") as f:
        json.load(f)
    no_temp_files(tmp)


def stdout_is_link():
    return os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == "/proc/self/fd/1"


def restore_stdout_link():
    """Puts /dev/stdout back if a broken pacer renamed a file over it."""
    if stdout_is_link() or os.geteuid() != 0:
        return
    tmp = "/dev/.stdout.pacer-test"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink("/proc/self/fd/1", tmp)
    os.rename(tmp, "/dev/stdout")


def scenario_stdout(tmp):
    check(stdout_is_link(), "/dev/stdout is not a link to /proc/self/fd/1 before the test")
    wf = workflow(tmp)
    try:
        code, out, err = run(wf, ["--report", "json:/dev/stdout"])
        replaced = not stdout_is_link()
    finally:
        restore_stdout_link()
    check(not replaced, "/dev/stdout was replaced by a file (restored)")
    check(code == 0, "exit %d\n%s" % (code, err))
    check(json.loads(out)["run"]["outcome"] == "ok", "report on a piped stdout")
    wf = workflow(tmp, log="a log line")
    path = os.path.join(tmp, "out.txt")
    try:
        with open(path, "w") as f:
            code, _, err = run(wf, ["--report", "json:/dev/stdout"], stdout=f)
        replaced = not stdout_is_link()
    finally:
        restore_stdout_link()
    check(not replaced, "/dev/stdout was replaced by a file (restored)")
    check(code == 0, "exit %d\n%s" % (code, err))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    first, rest = text.split("\n", 1)
    check(first == "a log line", "the log line was overwritten: %r" % text[:80])
    check(json.loads(rest)["run"]["outcome"] == "ok", "report after the log line")


def scenario_dirs(tmp):
    deep = os.path.join(tmp, "a", "b", "c", "run.json")
    code, out, err = run(workflow(tmp), ["--report", "json:" + deep])
    check(code == 0, "exit %d\n%s" % (code, err))
    with open(deep, encoding="utf-8") as f:
        json.load(f)
    marker = os.path.join(tmp, "ran")
    wf = workflow(tmp, marker=marker)
    afile = os.path.join(tmp, "afile")
    write(afile, "x")
    for target, why in ((os.path.join(tmp, "a"), "is a directory"),
                        (os.path.join(afile, "x.json"), "Not a directory"),
                        (os.path.join(afile, "sub", "x.json"), "Not a directory")):
        t0 = time.monotonic()
        code, out, err = run(wf, ["--report", "json:" + deep, "--report", "html:" + target])
        check(code == 2, "%s: exit %d\n%s" % (target, code, err))
        check(why in err and "nothing was run" in err and "html:" in err,
              "%s: message %r" % (target, err))
        check(not os.path.exists(marker), "%s: the workflow ran" % target)
        check(time.monotonic() - t0 < 5, "slow to refuse")
    no_temp_files(os.path.dirname(deep))


def scenario_ci_recipe(tmp):
    wf = workflow(tmp)
    # docs/cron-and-ci.md, GitHub Actions and GitLab CI jobs.
    args = ["--timeout", "15m", "--report", "junit:reports/junit.xml",
            "--report", "html:reports/run.html", "--report", "trace:reports/trace.json"]
    code, out, err = run(wf, args, cwd=tmp)
    check(code == 0, "exit %d\n%s" % (code, err))
    ET.parse(os.path.join(tmp, "reports", "junit.xml"))
    with open(os.path.join(tmp, "reports", "trace.json"), encoding="utf-8") as f:
        json.load(f)
    with open(os.path.join(tmp, "reports", "run.html"), encoding="utf-8") as f:
        check(f.read().rstrip().endswith("</html>"), "html report")


SCENARIOS = {
    "devnull": scenario_devnull,
    "fifo": scenario_fifo,
    "fifo_no_reader": scenario_fifo_no_reader,
    "fifo_stalled": scenario_fifo_stalled,
    "symlink": scenario_symlink,
    "regular": scenario_regular,
    "stdout": scenario_stdout,
    "dirs": scenario_dirs,
    "ci_recipe": scenario_ci_recipe,
}


def main():
    def add_arguments(ap):
        ap.add_argument("--http", required=True, help="the fixture server's base URL")
    return scenarios.main(SCENARIOS, "pacer-out-", globals(), add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
