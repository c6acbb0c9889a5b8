#!/usr/bin/env python3
"""Checks pacer's run reports (--report FORMAT:PATH) end to end.

Usage: check_reports.py --pacer PATH SCENARIO...

Each scenario writes a small workflow to a temporary directory, runs the real
binary on it with every report format, and checks what came out:

  pool      six 100 ms sleeps in a pool of 2: waiting for a permit is
            recorded as queued, not running (max_concurrency 2, durations of
            100 ms, a "queued" counter in the trace and row in the HTML)
  formats   a run with a fan-out, a gather, a group timeout, `if`, a tolerated
            failure and a failing assert (exit 1): the JSON holds every step,
            the JUnit XML parses with the right counts and escaping, the trace
            is Chrome trace-event JSON whose slices never overlap on a lane,
            and the HTML is self-contained with one SVG bar per step
  secrets   a value read through `secrets` (with quotes, & and <) never
            appears in any report nor in the log; `***` does
  sigterm   SIGTERM mid-run: exit 143, `finally` ran, every report complete
            and valid, nothing left "running"
  deadline  --timeout: exit 4, reports say "timeout"
  sigkill   SIGKILL while the reports are being written (caught by watching
            for the temporary file) never leaves a truncated report: the old
            file or a complete new one
  large     a 20 000-item fan-out: the HTML timeline caps its bars and says so

It is called by the tests/cases/report_*.yml cases (through an `exec` step)
and can be run by hand. Prints "ok SCENARIO" per scenario; exits 1 on failure.
"""
import glob
import html.parser
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import scenarios
from scenarios import check, write

FORMATS = ("json", "junit", "trace", "html")
PACER = None


def run(tmp, workflow, args=(), env=None, sig=None, timeout=60):
    """Runs `pacer run` on the workflow text with every report format."""
    wf = os.path.join(tmp, "wf.yml")
    write(wf, workflow)
    cmd = [PACER, "run", wf, "--progress", "never"] + list(args)
    for fmt in FORMATS:
        cmd += ["--report", "%s:%s" % (fmt, os.path.join(tmp, "report." + fmt))]
    e = dict(os.environ)
    e["NO_COLOR"] = "1"
    e.update(env or {})
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True,
                         errors="replace")
    if sig:
        signum, after = sig
        time.sleep(after)
        p.send_signal(signum)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def load_reports(tmp):
    """Parses all four reports, checking the generic invariants of each."""
    with open(os.path.join(tmp, "report.json"), encoding="utf-8") as f:
        rep = json.load(f)
    check(rep.get("schema") == "pacer-report" and rep.get("version") == 3, "json: schema/version")
    for key in ("workflow", "run", "stats", "steps"):
        check(key in rep, "json: no %r" % key)
    steps = rep["steps"]
    for i, s in enumerate(steps):
        check(s["index"] == i, "json: index %d" % i)
        check(s["parent"] is None or s["parent"] < i, "json: parent after child at %d" % i)
        for key in ("path", "kind", "label", "outcome", "started_at", "duration_ms"):
            check(key in s, "json: step %d has no %s" % (i, key))
        check(s["duration_ms"] >= 0, "json: negative duration")
        check(s["start_offset_ms"] >= 0, "json: negative start offset at %d" % i)
        if s["kind"] == "step":
            check(0 <= s["ready_offset_ms"] <= s["start_offset_ms"] and s["queued_ms"] >= 0,
                  "json: ready/queued of step %d: %r" % (i, s))
            check(s["lane"] is None or s["lane"] < rep["stats"]["max_concurrency"],
                  "json: lane %r of step %d" % (s["lane"], i))
    leaves = [s for s in steps if s["kind"] == "step"]
    check(rep["stats"]["leaves"] == len(leaves), "json: stats.leaves")
    check(rep["stats"]["steps"] == len([s for s in steps if s["kind"] != "root"]),
          "json: stats.steps")
    check(sum(rep["stats"]["outcomes"].values()) == len(leaves), "json: stats.outcomes")
    paths = [s["path"] for s in steps]
    check(len(set(paths)) == len(paths), "json: duplicate paths")

    junit = ET.parse(os.path.join(tmp, "report.junit")).getroot()
    check(junit.tag == "testsuites", "junit: root is %s" % junit.tag)
    suites = junit.findall("testsuite")
    cases = junit.findall("testsuite/testcase")
    check(int(junit.get("tests")) == len(cases), "junit: tests=%s, %d cases" %
          (junit.get("tests"), len(cases)))
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        n = len(junit.findall("testsuite/testcase/" + tag))
        check(int(junit.get(attr)) == n, "junit: %s=%s but %d <%s>" % (attr, junit.get(attr), n,
                                                                        tag))
        check(sum(int(s.get(attr)) for s in suites) == n, "junit: suite %s don't add up" % attr)
    for c in cases:
        check(c.get("name") and c.get("classname"), "junit: case without name/classname")
        float(c.get("time"))
    check(len(cases) >= len(leaves), "junit: fewer cases than leaf steps")

    with open(os.path.join(tmp, "report.trace"), encoding="utf-8") as f:
        trace = json.load(f)
    events = trace["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    check(len(xs) == len(steps), "trace: %d slices for %d records" % (len(xs), len(steps)))
    named = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    by_tid = {}
    for e in xs:
        check(e["pid"] == 1 and isinstance(e["tid"], int), "trace: pid/tid")
        check(e["ts"] >= 0 and e["dur"] >= 0, "trace: ts/dur")
        check(e["tid"] in named, "trace: tid %d has no thread_name" % e["tid"])
        by_tid.setdefault(e["tid"], []).append(e)
    for tid, evs in by_tid.items():
        evs.sort(key=lambda e: e["ts"])
        for a, b in zip(evs, evs[1:]):
            # Times are monotonic offsets; 1 us of slack for rounding.
            check(a["ts"] + a["dur"] <= b["ts"] + 1,
                  "trace: slices overlap on tid %d: %s and %s" % (tid, a["name"], b["name"]))

    with open(os.path.join(tmp, "report.html"), encoding="utf-8") as f:
        page = f.read()
    check(page.startswith("<!DOCTYPE html>"), "html: doctype")
    check("<svg" in page and "</svg>" in page, "html: no svg")
    low = page.lower()
    for bad in ("<script", "<link", "<img", "src=", "@import", "url(", "<iframe"):
        check(bad not in low, "html: fetches or scripts: %r" % bad)
    tags = TagCounter()
    tags.feed(page)
    check(tags.balanced(), "html: unbalanced tags %r" % tags.stack[-5:])
    return rep, junit, trace, page, tags


class TagCounter(html.parser.HTMLParser):
    VOID = {"meta", "br", "rect", "line", "i", "hr"}

    def __init__(self):
        super().__init__()
        self.stack = []
        self.bars = 0
        self.bad = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "rect" and (a.get("class") or "").split()[:1] == ["bar"]:
            self.bars += 1
        if tag not in ("meta", "br", "hr"):
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        if tag == "rect" and (a.get("class") or "").split()[:1] == ["bar"]:
            self.bars += 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.bad = True
        else:
            self.stack.pop()

    def balanced(self):
        return not self.bad and not self.stack


# ------------------------------------------------------------------ scenarios

MIXED = r"""
name: report-mixed
description: "Fan-out, gather, group timeout, if, a tolerated and a real failure <&>"
timeout: 30s
steps:
  - id: first
    sleep: 30ms
  - id: fan
    for_each: ${{ range(1, 5) }}
    concurrency: 3
    steps:
      - sleep: ${{ 0.02 * index }}
      - id: check
        assert: ["index ~= 4"]
        continue_on_error: true
  - id: both
    continue_on_error: true
    gather:
      - sleep: 80ms
      - id: skipped_one
        if: "false"
        log: never
      - id: slow_group
        timeout: 100ms
        steps:
          - sleep: 5s
  - id: fails
    assert: ["1 < 0 and 'a&b' == \"<x>\""]
finally:
  - log: "finally: ${{ workflow.outcome }}"
"""


def scenario_formats(tmp):
    code, out, err = run(tmp, MIXED)
    check(code == 1, "exit %d, expected 1\n%s" % (code, err))
    check("finally: failed" in out, "finally did not run: %r" % out)
    rep, junit, trace, page, tags = load_reports(tmp)
    check(rep["run"]["exit_code"] == 1 and rep["run"]["outcome"] == "failed", "json: run")
    check(rep["workflow"]["name"] == "report-mixed", "json: workflow name")
    steps = {s["path"]: s for s in rep["steps"]}
    for i in range(1, 6):
        check("steps/fan[%d]" % i in steps, "json: no steps/fan[%d] in %r" % (i, list(steps)))
        check(steps["steps/fan[%d]/check" % i]["outcome"] == ("failed" if i == 4 else "ok"),
              "json: fan[%d]/check" % i)
    check(steps["steps/fan"]["total"] == 5 and steps["steps/fan"]["finished"] == 5, "json: fan")
    check(steps["steps/both/skipped_one"]["outcome"] == "skipped", "json: skipped_one")
    check(steps["steps/both/slow_group"]["outcome"] == "timeout", "json: slow_group")
    check(steps["steps/fails"]["outcome"] == "failed", "json: fails")
    check("1 < 0" in steps["steps/fails"]["error"], "json: error text")
    check(steps["finally"]["outcome"] == "ok", "json: finally")

    # JUnit: failures are the two asserts; the group timeout is an error of
    # its own; `if: false` and the cancelled sleep are skipped.
    fails = junit.findall("testsuite/testcase/failure")
    check(len(fails) == 2, "junit: %d failures, expected 2" % len(fails))
    check(any("1 < 0 and 'a&b' == \"<x>\"" in f.get("message") for f in fails),
          "junit: the failure message was not escaped faithfully: %r" %
          [f.get("message") for f in fails])
    errors = junit.findall("testsuite/testcase/error")
    check(len(errors) == 1 and errors[0].get("type") == "timeout", "junit: errors %r" %
          [(e.get("type"), e.get("message")) for e in errors])
    skipped = [c.get("name") for c in junit.findall("testsuite/testcase")
               if c.find("skipped") is not None]
    check(any("skipped_one" in s for s in skipped), "junit: skipped_one not skipped: %r" % skipped)
    names = [s.get("name") for s in junit.findall("testsuite")]
    check(names[0] == "steps" and names[-1] == "finally", "junit: suites %r" % names)
    check("fan" in names, "junit: no suite for fan: %r" % names)
    fan = [s for s in junit.findall("testsuite") if s.get("name") == "fan"][0]
    check(int(fan.get("tests")) == 10, "junit: fan suite has %s cases" % fan.get("tests"))
    # Stable test identity: a case is named by ids, names and item labels
    # (an unnamed step by its action and position), never by a line number.
    case_names = [c.get("name") for c in junit.findall("testsuite/testcase")]
    check(not any(re.search(r":\d+\)", n) for n in case_names),
          "junit: a line number in a case name: %r" % case_names)
    fan_names = [c.get("name") for c in fan.findall("testcase")]
    want = ["fan[%d] %d / %s" % (i, i, s) for i in range(1, 6) for s in ("sleep #1", "check")]
    check(sorted(fan_names) == sorted(want), "junit: fan case names %r" % fan_names)

    # Trace: every slice carries its outcome; leaves of the fan-out overlap
    # in time, so they need more than one lane.
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    check(all("outcome" in e["args"] for e in xs), "trace: args.outcome")
    lanes = {e["tid"] for e in xs if e["args"]["kind"] == "step"}
    check(len(lanes) >= 3, "trace: leaves on %d lanes only" % len(lanes))
    check(trace["otherData"]["workflow"] == "report-mixed", "trace: otherData")

    nsteps = len([s for s in rep["steps"] if s["kind"] != "root"])
    check(tags.bars == nsteps, "html: %d bars for %d steps" % (tags.bars, nsteps))
    check(page.index("Failures (") < page.index("<svg"), "html: failures not first")
    check("exit code 1" in page, "html: exit code")
    check("1 &lt; 0 and &#39;a&amp;b&#39;" in page, "html: escaping")


POOL = r"""
name: report-pool
pools:
  two: { concurrency: 2 }
steps:
  - id: work
    for_each: ${{ range(1, 6) }}
    pool: two
    sleep: 100ms
"""


def scenario_pool(tmp):
    """Waiting for a pool permit is not running (issue: six 100 ms sleeps
    in a pool of 2 used to report max_concurrency 6, every item starting at
    0.5 ms and lasting 100/200/300 ms)."""
    code, out, err = run(tmp, POOL)
    check(code == 0, "exit %d\n%s" % (code, err))
    rep, junit, trace, page, tags = load_reports(tmp)
    check(rep["stats"]["max_concurrency"] == 2, "json: max_concurrency %r" %
          rep["stats"]["max_concurrency"])
    items = [s for s in rep["steps"] if s["kind"] == "step"]
    check(len(items) == 6 and all(s["lane"] in (0, 1) for s in items), "json: lanes %r" %
          [s["lane"] for s in items])
    # Never more than 2 running at once, whatever the machine's load: the
    # running intervals overlap at most two deep.
    edges = sorted([(s["start_offset_ms"], 1) for s in items] +
                   [(s["start_offset_ms"] + s["duration_ms"], -1) for s in items],
                   key=lambda e: (e[0], e[1]))
    depth = peak = 0
    for _, d in edges:
        depth += d
        peak = max(peak, depth)
    check(peak == 2, "json: %d steps ran at once in a pool of 2" % peak)
    # Each ran for its own 100 ms, not for its wait too.
    for s in items:
        check(s["duration_ms"] < s["queued_ms"] + 100 or s["queued_ms"] < 1,
              "json: %s: duration %.1f ms includes its wait of %.1f ms" %
              (s["path"], s["duration_ms"], s["queued_ms"]))
        check(abs(s["start_offset_ms"] - s["ready_offset_ms"] - s["queued_ms"]) < 1,
              "json: %s: ready %.1f + queued %.1f != start %.1f" %
              (s["path"], s["ready_offset_ms"], s["queued_ms"], s["start_offset_ms"]))
    waited = [s for s in items if s["queued_ms"] >= 50]
    check(len(waited) == 4, "json: %d steps waited, expected 4" % len(waited))
    check(rep["stats"]["max_queued"] == 4, "json: max_queued %r" % rep["stats"]["max_queued"])
    # The trace draws waiting as a counter, not as slices on the lanes.
    counters = [e for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "queued"]
    check(counters and max(list(e["args"].values())[0] for e in counters) == 4,
          "trace: the queued counter %r" % counters[:6])
    lanes = {e["tid"] for e in trace["traceEvents"] if e["ph"] == "X" and
             e["args"]["kind"] == "step"}
    check(len(lanes) == 2, "trace: steps on %d lanes" % len(lanes))
    check('class="queued"' in page and ">queued</text>" in page, "html: no queued row")
    check("max queued" in page, "html: summary without max queued")


def scenario_secrets(tmp):
    secret = os.environ.get("PACER_TEST_SECRET") or "s3cr\"t&<x>'y"
    wf = r"""
name: report-secrets
steps:
  - id: leak
    for_each: ${{ { secrets.PACER_TEST_SECRET } }}
    sleep: ${{ item }}
"""
    code, out, err = run(tmp, wf, env={"PACER_TEST_SECRET": secret})
    check(code == 3, "exit %d, expected 3 (invalid sleep duration)\n%s" % (code, err))
    check(secret not in err and secret not in out, "the secret reached the log")
    check("***" in err, "the log does not show the redaction: %r" % err)
    load_reports(tmp)
    # Any escaped form of the secret must be absent too.
    forms = {secret, json.dumps(secret)[1:-1], secret.replace("&", "&amp;").replace("<", "&lt;"),
             secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace('"', "&quot;").replace("'", "&#39;")}
    for fmt in FORMATS:
        with open(os.path.join(tmp, "report." + fmt), encoding="utf-8") as f:
            text = f.read()
        for form in forms:
            check(form not in text, "report %s holds the secret as %r" % (fmt, form))
        check("***" in text, "report %s does not show the redaction" % fmt)


LONG = r"""
name: report-long
steps:
  - id: quick
    sleep: 10ms
  - id: work
    gather:
      - sleep: 20s
      - id: many
        for_each: ${{ range(1, 40) }}
        concurrency: 8
        sleep: 20s
finally:
  - log: "finally: ${{ workflow.outcome }}"
"""


def all_done(rep):
    return all(s["outcome"] != "running" for s in rep["steps"])


def scenario_sigterm(tmp):
    t0 = time.monotonic()
    code, out, err = run(tmp, LONG, sig=(signal.SIGTERM, 0.6))
    check(code == 143, "exit %d, expected 143\n%s" % (code, err))
    check(time.monotonic() - t0 < 10, "took too long")
    check("finally: cancelled" in out, "finally: %r" % out)
    rep, junit, trace, page, tags = load_reports(tmp)
    check(rep["run"]["outcome"] == "cancelled" and rep["run"]["exit_code"] == 143, "json: run")
    check(rep["run"]["finished"] is True and all_done(rep), "json: records left running")
    steps = {s["path"]: s for s in rep["steps"]}
    check(steps["steps/quick"]["outcome"] == "ok", "json: quick")
    check(steps["steps/work/many"]["outcome"] == "cancelled", "json: many")
    check(steps["finally"]["outcome"] == "ok", "json: finally")
    errors = junit.findall("testsuite/testcase/error")
    check(any("SIGTERM" in (e.get("message") or "") for e in errors),
          "junit: the interruption is not an error: %r" % [e.get("message") for e in errors])
    check(tags.bars == len([s for s in rep["steps"] if s["kind"] != "root"]), "html: bars")


def scenario_deadline(tmp):
    code, out, err = run(tmp, LONG, args=["--timeout", "500ms"])
    check(code == 4, "exit %d, expected 4\n%s" % (code, err))
    rep, junit, *_ = load_reports(tmp)
    check(rep["run"]["outcome"] == "timeout" and rep["run"]["exit_code"] == 4, "json: run")
    check(all_done(rep), "json: records left running")
    errors = junit.findall("testsuite/testcase/error")
    check(any("deadline" in (e.get("message") or "") for e in errors),
          "junit: the deadline is not an error: %r" % [e.get("message") for e in errors])


BIG = r"""
name: report-big
steps:
  - id: many
    for_each: ${{ range(1, 20000) }}
    concurrency: 500
    sleep: 0
"""


def scenario_sigkill(tmp):
    """Kills pacer as soon as a report's temporary file shows up."""
    wf = os.path.join(tmp, "wf.yml")
    write(wf, BIG)
    old = '{"old": true}\n'
    caught = 0
    for attempt in range(4):
        paths = {fmt: os.path.join(tmp, "r%d.%s" % (attempt, fmt)) for fmt in FORMATS}
        for p in paths.values():
            write(p, old)
        cmd = [PACER, "run", wf, "-q", "--progress", "never"]
        for fmt, p in paths.items():
            cmd += ["--report", "%s:%s" % (fmt, p)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # The temporary file beside the report (".r0.json.pacer-XXXXXX"),
        # not the start-of-run check (".r0.json.pacer-check-XXXXXX").
        pattern = os.path.join(tmp, ".r%d.*.pacer-??????" % attempt)
        # Alternate: kill at the first temporary file, or a little later.
        delay = 0.0 if attempt % 2 == 0 else 0.002
        while proc.poll() is None and time.monotonic() < deadline:
            if glob.glob(pattern):
                if delay:
                    time.sleep(delay)
                proc.kill()
                caught += 1
                break
            time.sleep(0.0005)
        proc.wait()
        for fmt, p in paths.items():
            with open(p, encoding="utf-8") as f:
                text = f.read()
            if text == old:
                continue
            # A new report must be complete.
            if fmt in ("json", "trace"):
                json.loads(text)
            elif fmt == "junit":
                ET.fromstring(text)
            else:
                check(text.rstrip().endswith("</html>"), "html report truncated")
    check(caught > 0, "never caught pacer writing a report")


def scenario_large(tmp):
    code, out, err = run(tmp, BIG)
    check(code == 0, "exit %d\n%s" % (code, err))
    rep, junit, trace, page, tags = load_reports(tmp)
    check(rep["stats"]["leaves"] == 20000, "json: leaves")
    check(len(junit.findall("testsuite/testcase")) == 20000, "junit: cases")
    check(tags.bars == 5000, "html: %d bars, expected the cap of 5000" % tags.bars)
    check("Showing the first 5000 of 20001 steps" in page, "html: the cap is not explained")


SCENARIOS = {
    "formats": scenario_formats,
    "pool": scenario_pool,
    "secrets": scenario_secrets,
    "sigterm": scenario_sigterm,
    "deadline": scenario_deadline,
    "sigkill": scenario_sigkill,
    "large": scenario_large,
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    return scenarios.main(SCENARIOS, "pacer-rep-", globals(), pacer_default=os.environ.get(
        "PACER") or os.path.join(here, "..", "build", "pacer"))


if __name__ == "__main__":
    sys.exit(main())
