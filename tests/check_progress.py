#!/usr/bin/env python3
"""Checks the live progress display (--progress) through a pseudo-terminal.

Usage: check_progress.py --pacer PATH

Runs pacer on a fan-out whose items print to stdout and sometimes fail (so
log lines, stdout lines and the display all compete for one terminal), with
stdout and stderr on a pty of 100x40, and replays the bytes through a small
terminal emulator (\\r, \\n, cursor up, erase line, erase below, SGR). Then:

  - bars were drawn: the raw output shows "N/40" counters and "running";
  - the final screen is clean: no bar is left, every line is whole (a log
    line or one `item N` line, never a mix), each item printed exactly once,
    and no line is wider than the terminal;
  - steps waiting for a pool permit are shown as queued, never as running
    (a fan-out of 8 in a pool of 2: no frame shows more than 2 running);
  - colour only without NO_COLOR; no escape sequence at all with
    `--progress never`, nor with `auto` when stderr is not a terminal.

Prints "ok NAME" per check; exits 1 on failure.
"""
import argparse
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time

from scenarios import Failure as Fail, check

WIDTH, HEIGHT = 100, 40

WORKFLOW = r"""
name: progress-demo
steps:
  - id: items
    for_each: ${{ range(1, 40) }}
    concurrency: 6
    steps:
      - sleep: ${{ 0.05 + (index % 4) * 0.03 }}
      - log: "item ${{ index }}"
      - assert: ["index % 9 ~= 0"]
        continue_on_error: true
  - id: pair
    gather:
      - sleep: 300ms
      - for_each: ${{ range(1, 12) }}
        concurrency: 3
        sleep: 60ms
"""

# Waiting for a pool permit is not running: a fan-out of 8 in a pool of 2.
POOL_WORKFLOW = r"""
name: progress-pool
pools:
  two: { concurrency: 2 }
steps:
  - id: waits
    for_each: ${{ range(1, 8) }}
    pool: two
    sleep: 150ms
"""

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (error|warn |info |debug) ")
ITEM_LINE = re.compile(r"^item \d+$")
CONT_LINE = re.compile(r"^  \S")  # a log record's next line


def run_pty(cmd, env):
    """Runs cmd with stdout and stderr on a new pty; returns all bytes."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
            os.execve(cmd[0], cmd, env)
        finally:
            os._exit(127)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def emulate(text):
    """Replays terminal output; returns the screen as a list of lines
    (scrollback included, since nothing here scrolls past the top)."""
    lines = [""]
    row = col = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            m = re.match(r"\x1b\[(\d*)([A-Za-z])", text[i:])
            check(m, "unknown escape sequence %r" % text[i:i + 8])
            n = int(m.group(1) or "1") if m.group(2) != "m" else 0
            op = m.group(2)
            if op == "A":
                row = max(0, row - n)
            elif op == "K":
                lines[row] = lines[row][:col]
            elif op == "J":
                lines[row] = lines[row][:col]
                del lines[row + 1:]
            elif op != "m":
                raise Fail("unexpected escape %r" % m.group(0))
            i += len(m.group(0))
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            while len(lines) <= row:
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1:]
            col += 1
        i += 1
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def base_env():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env["TERM"] = "xterm-256color"
    env["LANG"] = "C.UTF-8"
    return env


def check_display(pacer, wf, color):
    env = base_env()
    if not color:
        env["NO_COLOR"] = "1"
    code, raw = run_pty([pacer, "run", wf, "--progress", "auto"], env)
    check(code == 0, "exit %d:\n%s" % (code, raw[-2000:]))
    check(re.search(r"\d+/40 +\d+ running", raw), "no fan-out bar with done/total:\n%r" %
          raw[-3000:])
    check("\x1b[" in raw and "A" in raw, "no cursor movement: the display never redrew")
    has_color = re.search(r"\x1b\[(3\d|1|2)m", raw) is not None
    check(has_color == color, "colour %s, expected %s" % (has_color, color))
    # Every line of the display fits the terminal (a wrapped line would break
    # the cursor arithmetic); log lines may be longer and simply wrap.
    for seg in re.split(r"[\r\n]", re.sub(r"\x1b\[\d*[A-Za-z]", "\n", raw)):
        if "running" in seg and not LOG_LINE.match(seg):
            check(len(seg) < WIDTH, "display line wider than the terminal: %r" % seg)
    screen = emulate(raw)
    items = []
    in_log = False  # the lines under a log line (values, the summary) are indented
    for line in screen:
        cont = in_log and CONT_LINE.match(line)
        check(LOG_LINE.match(line) or ITEM_LINE.match(line) or cont,
              "torn or leftover line on the final screen: %r\n--- screen ---\n%s" %
              (line, "\n".join(screen)))
        in_log = bool(LOG_LINE.match(line) or cont)
        if ITEM_LINE.match(line):
            items.append(int(line.split()[1]))
    check(sorted(items) == list(range(1, 41)), "items on screen: %r" % sorted(items))
    check(any("workflow progress-demo: ok" in l for l in screen), "no closing log line")


def check_queued(pacer, tmp):
    """Steps waiting for a pool permit are shown as queued, never as running:
    no frame shows more than 2 running, and some show the rest queued."""
    wf = os.path.join(tmp, "pool.yml")
    with open(wf, "w") as f:
        f.write(POOL_WORKFLOW)
    env = base_env()
    env["NO_COLOR"] = "1"
    code, raw = run_pty([pacer, "run", wf, "--progress", "always"], env)
    check(code == 0, "exit %d:\n%s" % (code, raw[-2000:]))
    segs = re.split(r"[\r\n]", re.sub(r"\x1b\[\d*[A-Za-z]", "\n", raw))
    status = [s for s in segs if s.startswith("progress-pool ")]
    bars = [s for s in segs if re.search(r"\d+/8 ", s)]
    check(status and bars, "no display:\n%r" % raw[-2000:])
    for line in status + bars:
        m = re.search(r"(\d+) running", line)
        check(m and int(m.group(1)) <= 2, "more than the pool's 2 shown running: %r" % line)
    check(any(re.search(r"\d+ running  [1-6] queued", s) for s in status),
          "the status line never shows steps queued: %r" % status[:5])
    check(any(re.search(r"\d+ running  [1-6] queued", s) for s in bars),
          "the fan-out bar never shows items queued: %r" % bars[:5])


def check_never(pacer, wf):
    env = base_env()
    env["NO_COLOR"] = "1"
    code, raw = run_pty([pacer, "run", wf, "--progress", "never"], env)
    check(code == 0, "exit %d" % code)
    check("\x1b" not in raw, "escape sequences with --progress never: %r" % raw[:400])


def check_not_a_tty(pacer, wf):
    env = base_env()
    p = subprocess.run([pacer, "run", wf], capture_output=True, text=True, env=env, timeout=60)
    check(p.returncode == 0, "exit %d" % p.returncode)
    check("\x1b" not in p.stderr and "\x1b" not in p.stdout,
          "escape sequences when stderr is not a terminal: %r" % p.stderr[:400])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", default=os.environ.get("PACER") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "build", "pacer"))
    opts = ap.parse_args()
    pacer = os.path.abspath(opts.pacer)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="pacer-progress-") as tmp:
        wf = os.path.join(tmp, "progress.yml")
        with open(wf, "w") as f:
            f.write(WORKFLOW)
        checks = [("display-colour", lambda: check_display(pacer, wf, True)),
                  ("display-no-colour", lambda: check_display(pacer, wf, False)),
                  ("queued", lambda: check_queued(pacer, tmp)),
                  ("never", lambda: check_never(pacer, wf)),
                  ("not-a-tty", lambda: check_not_a_tty(pacer, wf))]
        for name, fn in checks:
            try:
                fn()
                print("ok " + name)
            except Exception as e:
                failed += 1
                print("FAIL %s: %s" % (name, e), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
