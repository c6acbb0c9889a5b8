#!/usr/bin/env python3
"""Checks `pacer merge` end to end with the real binary.

Usage: check_merge.py --pacer PATH SCENARIO...

  roundtrip  the report of a run merged alone (it is shard 1 of 1) gives the
             same JSON (but the shard fields) and the same JUnit XML
  shards     a one-process run's report is cut into N shard reports as N
             shards of the same run would write them (fan-out items striped
             by position, each shard's histograms made from its own records
             with this file's reading of the bucket layout of
             docs/reports.md, steps outside fan-outs on shard 1 as
             `shard: one` puts them, each shard started at another moment);
             their merge has the one-process counts, outcomes, records and
             exit code, histograms equal bucket for bucket, percentiles
             within the documented error of the exact ones, and every
             report format
  refusals   a missing shard, a shard given twice, shards of another
             workflow or other vars, a merged report, something else than
             a report, a report of another version, an item two shards
             ran, an edited histogram: exit 2, a message saying which, and
             no report written
  exitcode   the merged exit code follows SPEC §1 (a signal, then the
             deadline, then errors, then failures) and run.outcome with it

The shard reports of scenario "shards" are cut from a one-process report,
so that every detail of the merge can be compared with it;
tests/check_shard_run.py merges the reports of N real `--shard` runs.

Prints "ok SCENARIO" per scenario; exits 1 on failure.
"""
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import scenarios
from scenarios import check

PACER = None


def run(args, timeout=60):
    p = subprocess.run([PACER] + args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)


# --------------------------------------------------- the bucket layout
# docs/reports.md, "Latency": exact below 256 us, then 128 buckets per
# power of two. Written here from the doc, not from hist.c.

def bucket_index(v):
    if v < 256:
        return v
    e = v.bit_length() - 1
    return 256 + (e - 8) * 128 + ((v >> (e - 7)) - 128)


def bucket_lo(i):
    if i < 256:
        return i
    j = i - 256
    e = 8 + j // 128
    return (128 + j % 128) << (e - 7)


def bucket_width(i):
    return 1 if i < 256 else 1 << (1 + (i - 256) // 128)


def us(ms):
    # The report's durations have three decimals: whole microseconds.
    return int(round(ms * 1000))


def histogram(values):
    counts = {}
    for v in values:
        i = bucket_index(v)
        counts[i] = counts.get(i, 0) + 1
    return {"unit": "us", "linear": 256, "sub_buckets": 128, "count": len(values),
            "min": min(values) if values else 0, "max": max(values) if values else 0,
            "sum": sum(values), "buckets": [[bucket_lo(i), counts[i]] for i in sorted(counts)]}


def hist_percentile(h, p):
    """The doc's reading: nearest rank, the middle of its bucket, clamped."""
    if h["count"] == 0:
        return 0
    if p <= 0:
        return h["min"]
    if p >= 100:
        return h["max"]
    rank = max(1, math.ceil(p / 100 * h["count"]))
    seen = 0
    for lo, c in h["buckets"]:
        seen += c
        if seen >= rank:
            i = bucket_index(lo)
            mid = lo + bucket_width(i) // 2
            return min(max(mid, h["min"]), h["max"])
    return h["max"]


def exact_percentile(values, p):
    v = sorted(values)
    if p <= 0:
        return v[0]
    return v[max(1, math.ceil(p / 100 * len(v))) - 1]


# ------------------------------------------------------- the workflow

WORKFLOW = """\
name: shardme
steps:
  - id: setup
    log: setup
  - id: f
    for_each: ${{ range(1, 60) }}
    concurrency: 8
    fail_fast: false
    steps:
      - id: nap
        sleep: "${{ (index % 5) * 3 + 1 }}ms"
      - id: check
        assert: ["index % 13 ~= 0"]
  - id: never
    log: not reached
finally:
  - log: done
"""


def one_process_run(tmp):
    wf = os.path.join(tmp, "shardme.yml")
    with open(wf, "w") as f:
        f.write(WORKFLOW)
    out = os.path.join(tmp, "one")
    code, _, err = run(["run", wf, "--report", "json:%s/run.json" % out,
                        "--report", "junit:%s/run.xml" % out, "--var", "x=1"])
    check(code == 1, "the one-process run exits 1 (four items fail): %d %s" % (code, err))
    return load(out + "/run.json"), out


def step_key(path):
    out, skip = [], False
    for ch in path:
        if ch == "[":
            skip = True
        elif ch == "]":
            skip = False
        elif not skip:
            out.append(ch)
    return "".join(out)


def cut(rep, n, starts_apart_ms=0):
    """The report of each of n shards, as the shards would write them."""
    steps = rep["steps"]
    # Which shard holds each record: an item by its position (striped),
    # everything below it with it; other leaves on shard 1 (`shard: one`);
    # groups outside items on every shard.
    owner = {}
    for s in steps:
        parent = steps[s["parent"]] if s["parent"] is not None else None
        if parent is not None and parent["index"] in owner and owner[parent["index"]] is not None:
            owner[s["index"]] = owner[parent["index"]]
        elif s.get("item") and parent is not None and s["path"] == "%s[%d]" % (parent["path"], s["item"]):
            owner[s["index"]] = (s["item"] - 1) % n + 1
        elif s["kind"] == "step":
            owner[s["index"]] = 1
        else:
            owner[s["index"]] = None  # on every shard
    shards = []
    for k in range(1, n + 1):
        keep = [s for s in steps if owner[s["index"]] in (None, k)]
        renum = {s["index"]: i for i, s in enumerate(keep)}
        shift = (k - 1) * starts_apart_ms
        out = []
        for s in keep:
            t = copy.deepcopy(s)
            t["index"] = renum[s["index"]]
            t["parent"] = renum[s["parent"]] if s["parent"] is not None else None
            t["start_offset_ms"] = round(s["start_offset_ms"] - shift, 3)
            if "ready_offset_ms" in t:
                t["ready_offset_ms"] = round(s["ready_offset_ms"] - shift, 3)
            out.append(t)
        # A fan-out's counters count the shard's share of the items; other
        # groups have the same children on every shard.
        for t in out:
            if t["kind"] == "for_each":
                kids = [c for c in out if c["parent"] == t["index"]]
                t["total"] = len(kids)
                t["finished"] = len(kids)
                t["failed"] = sum(1 for c in kids if c["outcome"] in ("failed", "error", "timeout"))
        r = copy.deepcopy(rep)
        r["steps"] = out
        r["shard"]["index"], r["shard"]["count"] = k, n
        # The shard started later, by its offset: its records say so.
        r["run"]["started_at"] = iso_plus(rep["run"]["started_at"], shift)
        r["run"]["started_at_epoch_ms"] = rep["run"]["started_at_epoch_ms"] + shift
        r["run"]["id"] = "%s-shard%d" % (rep["run"]["id"], k)
        lat = []
        for entry in rep["latency"]:
            vals = [us(t["duration_ms"]) for t in out
                    if t["kind"] == "step" and t["lane"] is not None and step_key(t["path"]) == entry["step"]]
            if vals:
                e = dict(entry)
                e["histogram"] = histogram(vals)
                lat.append(e)
        r["latency"] = lat
        if k > 1:
            r["stats"]["http"] = {"requests": 0}
        shards.append(r)
    return shards


def iso_plus(iso, ms):
    import datetime
    t = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ") + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def write_shards(tmp, shards, name="s"):
    paths = []
    for k, r in enumerate(shards, 1):
        p = os.path.join(tmp, "%s%d.json" % (name, k))
        dump(r, p)
        paths.append(p)
    return paths


def merge(tmp, paths, formats=("json",)):
    out = os.path.join(tmp, "merged")
    args = ["merge"] + paths
    for f in formats:
        args += ["--report", "%s:%s/m.%s" % (f, out, f)]
    code, _, err = run(args)
    return code, err, out


def junit_cases(path):
    root = ET.parse(path).getroot()
    return sorted((c.get("name"), c.find("failure") is not None) for c in root.iter("testcase"))


# ---------------------------------------------------------- scenarios

def scenario_roundtrip(tmp):
    rep, one = one_process_run(tmp)
    code, err, out = merge(tmp, [one + "/run.json"], ("json", "junit"))
    check(code == 1, "merge exits with the run's code 1: %d %s" % (code, err))
    m = load(out + "/m.json")
    for key in rep:
        if key in ("shard", "steps"):
            continue
        check(m[key] == rep[key], "merged %s differs:\n%s\n%s" % (key, m[key], rep[key]))
    check(m["shard"]["index"] is None and m["shard"]["count"] == 1
          and m["shard"]["merged"][0]["run_id"] == rep["run"]["id"], "merged shard: %s" % m["shard"])
    for a, b in zip(rep["steps"], m["steps"]):
        b = dict(b)
        check(b.pop("shard") == 1, "a record of shard 1")
        check(a == b, "record differs:\n%s\n%s" % (a, b))
    check(len(rep["steps"]) == len(m["steps"]), "as many records")
    with open(one + "/run.xml") as f1, open(out + "/m.junit") as f2:
        check(f1.read() == f2.read(), "the JUnit XML of the merge is the run's")


def scenario_shards(tmp):
    rep, one = one_process_run(tmp)
    for n in (1, 3, 4):
        sub = os.path.join(tmp, "n%d" % n)
        os.makedirs(sub)
        shards = cut(rep, n, starts_apart_ms=250)
        paths = write_shards(sub, shards)
        paths.reverse()  # the order given does not matter
        code, err, out = merge(sub, paths, ("json", "junit", "html", "trace"))
        check(code == 1, "n=%d: merge exits 1 like the run: %d %s" % (n, code, err))
        m = load(out + "/m.json")
        for key in ("steps", "leaves", "groups", "attempts", "retried", "outcomes"):
            check(m["stats"][key] == rep["stats"][key],
                  "n=%d: stats.%s %s, one process %s" % (n, key, m["stats"][key], rep["stats"][key]))
        check(m["run"]["outcome"] == rep["run"]["outcome"] and m["run"]["exit_code"] == 1, "run")
        check(m["run"]["started_at"] == rep["run"]["started_at"], "starts with the first shard")
        check(sorted(s["path"] for s in m["steps"]) == sorted(s["path"] for s in rep["steps"]),
              "n=%d: the same records" % n)
        byp = {s["path"]: s for s in rep["steps"]}
        for s in m["steps"]:
            o = byp[s["path"]]
            if s["kind"] == "step":
                # Leaves: the same times on the one timeline (the shards'
                # starts were apart; their offsets say so).
                check(abs(s["start_offset_ms"] - o["start_offset_ms"]) < 0.0015,
                      "n=%d: %s starts at %s, was %s" % (n, s["path"], s["start_offset_ms"], o["start_offset_ms"]))
                check(s["outcome"] == o["outcome"] and s["duration_ms"] == o["duration_ms"], s["path"])
            else:
                check(s["total"] == o["total"] and s["failed"] == o["failed"],
                      "n=%d: group %s counts %s/%s, was %s/%s" % (n, s["path"], s["total"], s["failed"], o["total"], o["failed"]))
                check(s["outcome"] == o["outcome"], "n=%d: group %s outcome" % (n, s["path"]))
        # Histograms: equal bucket for bucket to the one-process report's,
        # and percentiles within 1/256 of the exact ones.
        mlat = {e["step"]: e for e in m["latency"]}
        check(sorted(mlat) == sorted(e["step"] for e in rep["latency"]), "latency steps")
        for e in rep["latency"]:
            got = mlat[e["step"]]
            check(got["histogram"] == e["histogram"],
                  "n=%d: %s: merged histogram differs from the one-process one" % (n, e["step"]))
            vals = [us(s["duration_ms"]) for s in rep["steps"]
                    if s["kind"] == "step" and s["lane"] is not None and step_key(s["path"]) == e["step"]]
            for name, p in (("p50_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99)):
                exact = exact_percentile(vals, p)
                check(abs(got[name] * 1000 - exact) <= exact / 256 + 0.5,
                      "n=%d: %s %s: merged %s, exact %s us" % (n, e["step"], name, got[name], exact))
                check(round(hist_percentile(got["histogram"], p) / 1000, 3) == got[name],
                      "the doc's reading of the histogram gives the report's %s" % name)
        check(junit_cases(out + "/m.junit") == junit_cases(one + "/run.xml"),
              "n=%d: the merged JUnit has the run's test cases and failures" % n)
        with open(out + "/m.html") as f:
            page = f.read()
        check("shardme" in page and "<svg" in page, "html")
        trace = load(out + "/m.trace")
        check(trace["otherData"]["exit_code"] == 1, "trace")
        check(m["stats"]["max_concurrency"] >= 1, "lanes")


def scenario_refusals(tmp):
    rep, one = one_process_run(tmp)
    shards = cut(rep, 3)
    paths = write_shards(tmp, shards)

    def refused(args, text, what):
        out = os.path.join(tmp, "refused")
        code, _, err = run(["merge"] + args + ["--report", "json:%s/m.json" % out,
                                               "--report", "junit:%s/m.xml" % out])
        check(code == 2, "%s: exit %d, not 2 (%s)" % (what, code, err))
        check(text in err, "%s: no %r in %r" % (what, text, err))
        check(not os.path.exists(out + "/m.json") and not os.path.exists(out + "/m.xml"),
              "%s: a report was written" % what)

    refused(paths[:2], "shard 3 of 3 is missing", "missing")
    refused([paths[0]], "shards 2, 3 of 3 are missing", "two missing")
    refused(paths + [paths[1]], "shard 2 of 3 is given twice", "duplicate")
    other = copy.deepcopy(shards[2])
    other["shard"]["workflow_sha256"] = "0" * 64
    refused(paths[:2] + write_shards(tmp, [other], "wf"), "different workflow files", "workflow")
    other = copy.deepcopy(shards[2])
    other["shard"]["vars_sha256"] = "1" * 64
    refused(paths[:2] + write_shards(tmp, [other], "vars"), "different vars", "vars")
    other = copy.deepcopy(shards[2])
    other["shard"]["count"] = 4
    refused(paths[:2] + write_shards(tmp, [other], "count"), "not the shards of one run", "count")
    code, err, out = merge(tmp, paths)
    check(code == 1, "the three shards merge: %s" % err)
    refused([out + "/m.json"], "is a merged report", "merged")
    junk = os.path.join(tmp, "junk.json")
    with open(junk, "w") as f:
        f.write("{\"schema\": \"pacer-report\", \"vers")
    refused([junk], "not valid JSON", "junk")
    with open(junk, "w") as f:
        f.write("{\"steps\": [1, 2]}")
    refused([junk], "step record 0 is not one pacer writes", "junk record")
    with open(junk, "w") as f:
        f.write("[]")
    refused([junk], "not a pacer JSON report", "not a report")
    old = copy.deepcopy(shards[0])
    old["version"] = 2
    refused(write_shards(tmp, [old], "old") + paths[1:], "version 2", "version")
    refused([os.path.join(tmp, "nope.json")], "cannot read", "no file")
    # An item two shards ran: shard 2 also claims an item of shard 1.
    twice = copy.deepcopy(shards[1])
    stolen = [s for s in shards[0]["steps"] if s.get("item") == 1 and s["path"].endswith("[1]")][0]
    fan = [s for s in twice["steps"] if s["kind"] == "for_each"][0]
    t = dict(stolen)
    t["index"] = len(twice["steps"])
    t["parent"] = fan["index"]
    twice["steps"].append(t)
    refused([paths[0], paths[2]] + write_shards(tmp, [twice], "twice"), "was run by shard 1 and by shard 2",
            "item twice")
    edited = copy.deepcopy(shards[0])
    h = edited["latency"][-1]["histogram"]
    h["buckets"][0][1] += 1
    h["count"] += 1
    refused(write_shards(tmp, [edited], "edited") + paths[1:], "latency histograms", "edited")
    bad = copy.deepcopy(shards[0])
    bad["latency"][0]["histogram"]["sub_buckets"] = 64
    refused(write_shards(tmp, [bad], "layout") + paths[1:], "another layout", "layout")


def scenario_exitcode(tmp):
    rep, one = one_process_run(tmp)
    shards = cut(rep, 3)
    cases = [((0, 0, 0), 0, "ok"), ((0, 1, 0), 1, "failed"), ((1, 3, 0), 3, "error"),
             ((3, 4, 1), 4, "timeout"), ((4, 143, 3), 143, "cancelled"),
             ((129, 143, 0), 143, "cancelled"), ((130, 143, 129), 130, "cancelled")]
    outcome = {0: "ok", 1: "failed", 3: "error", 4: "timeout", 129: "cancelled",
               130: "cancelled", 143: "cancelled"}
    for codes, want, want_outcome in cases:
        sub = tempfile.mkdtemp(dir=tmp)
        for s, c in zip(shards, codes):
            s["run"]["exit_code"] = c
            s["run"]["outcome"] = outcome[c]
        code, err, out = merge(sub, write_shards(sub, shards))
        check(code == want, "codes %s: merged exit %d, want %d (%s)" % (codes, code, want, err))
        m = load(out + "/m.json")
        check(m["run"]["exit_code"] == want and m["run"]["outcome"] == want_outcome,
              "codes %s: run %s" % (codes, m["run"]))
        check([r["exit_code"] for r in m["shard"]["merged"]] == list(codes), "each shard's code kept")


SCENARIOS = {
    "roundtrip": scenario_roundtrip,
    "shards": scenario_shards,
    "refusals": scenario_refusals,
    "exitcode": scenario_exitcode,
}


def main():
    return scenarios.main(SCENARIOS, "pacer-merge-", globals())


if __name__ == "__main__":
    sys.exit(main())
