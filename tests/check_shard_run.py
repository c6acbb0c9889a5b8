#!/usr/bin/env python3
"""Checks `pacer run --shard` end to end: N real pacer processes, as a
Kubernetes Indexed Job or a GitLab `parallel:` job starts them, against a
local HTTP server that counts the requests it sees; then `pacer merge`.

Usage: check_shard_run.py --pacer PATH SCENARIO...

  jobs     three processes with JOB_COMPLETION_INDEX 0..2 and
           `--shard auto --shards 3`: the server sees every item of the
           outer fan-out exactly once (and each item's inner fan-out whole,
           on the item's shard), `shard: one` steps once, other steps on
           every shard; each shard ran items K, K+N, ...; the merge of the
           three reports has the records of a one-process run (path, kind,
           outcome), the fan-out's counters and exit code
  gitlab   CI_NODE_INDEX / CI_NODE_TOTAL (1-based): the same union, once each
  killed   one shard killed (SIGKILL) before it wrote its report: the merge
           of the others refuses (exit 2, the missing shard named)
  keyed    `shard_key:`: three shards run every item once, each on the shard
           docs/shards.md's FNV-1a hash of its key says (computed here from
           the doc), the same shard for an item when the list is reordered;
           a key that is not a string or number fails the step (exit 3)
  pools    a pool's rate is divided among the shards: two shards of a pool
           of 20/s (no `shared:`) run 40 items at 20/s together, 10/s each
  cli      bad --shard values and missing variables: exit 2, a clear
           message, nothing run

Prints "ok SCENARIO" per scenario; exits 1 on failure.
"""
import collections
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_shared_pool import Arrivals, check  # noqa: E402
import scenarios  # noqa: E402

PACER = None
ITEMS = 20

WORKFLOW = """\
steps:
  - http: { get: "${{ env.BASE }}/setup" }
    shard: one
  - http: { get: "${{ env.BASE }}/every" }
  - id: fan
    for_each: ${{ range(1, %d) }}
    concurrency: 4
    steps:
      - http: { get: "${{ env.BASE }}/item/${{ item }}?shard=${{ env.WHO }}" }
      - for_each: [a, b]
        http: { get: "${{ env.BASE }}/inner/${{ item }}" }
finally:
  - http: { get: "${{ env.BASE }}/teardown" }
    shard: one
""" % ITEMS


def write_wf(tmp):
    path = os.path.join(tmp, "shard.yml")
    with open(path, "w") as f:
        f.write(WORKFLOW)
    return path


def run_shards(tmp, srv, n, env_of, args_of, kill=None):
    wf = write_wf(tmp)
    procs = []
    for k in range(1, n + 1):
        e = dict(os.environ, BASE=srv.base, WHO=str(k))
        for var in ("JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL"):
            e.pop(var, None)
        e.update(env_of(k))
        rep = os.path.join(tmp, "shard%d.json" % k)
        procs.append((k, rep, subprocess.Popen(
            [PACER, "run", wf, "-q", "--progress", "never", "--report", "json:" + rep]
            + args_of(k), env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    if kill:
        procs[kill - 1][2].send_signal(signal.SIGKILL)
    out = []
    for k, rep, p in procs:
        o, e = p.communicate(timeout=60)
        out.append((k, rep, p.returncode, e))
    return out


def paths_seen(srv):
    return collections.Counter(p.split("?")[0] for _, p in srv.seen)


def check_union(srv, n):
    seen = paths_seen(srv)
    for i in range(1, ITEMS + 1):
        check(seen["/item/%d" % i] == 1, "item %d seen %d times" % (i, seen["/item/%d" % i]))
    check(seen["/inner/a"] == ITEMS and seen["/inner/b"] == ITEMS, "inner fan-outs: %s" % seen)
    check(seen["/setup"] == 1 and seen["/teardown"] == 1, "shard: one steps: %s" % seen)
    check(seen["/every"] == n, "a step outside fan-outs ran %d times on %d shards" % (seen["/every"], n))
    # Striped by position: item i on shard (i - 1) % n + 1.
    for _, p in srv.seen:
        if p.startswith("/item/"):
            i, who = p[len("/item/"):].split("?shard=")
            check(int(who) == (int(i) - 1) % n + 1, "item %s ran on shard %s" % (i, who))


def records(rep):
    return sorted((s["path"], s["kind"], s["outcome"]) for s in rep["steps"])


def sc_jobs(tmp):
    srv = Arrivals()
    try:
        res = run_shards(tmp, srv, 3, lambda k: {"JOB_COMPLETION_INDEX": str(k - 1)},
                         lambda k: ["--shard", "auto", "--shards", "3"])
        for k, rep, rc, err in res:
            check(rc == 0, "shard %d: exit %d: %s" % (k, rc, err))
            r = json.load(open(rep))
            check(r["shard"]["index"] == k and r["shard"]["count"] == 3
                  and r["shard"]["rule"] == "striped", "shard %d's identity: %s" % (k, r["shard"]))
        check_union(srv, 3)
        merged = os.path.join(tmp, "merged.json")
        p = subprocess.run([PACER, "merge"] + [rep for _, rep, _, _ in res]
                           + ["--report", "json:" + merged], capture_output=True, text=True)
        check(p.returncode == 0, "merge: exit %d: %s" % (p.returncode, p.stderr))
        m = json.load(open(merged))
        fan = [s for s in m["steps"] if s["path"] == "steps/fan"]
        check(len(fan) == 1 and fan[0]["total"] == ITEMS and fan[0]["finished"] == ITEMS,
              "the merged fan-out: %s" % fan)
        # A one-process run: the same records, but the step that runs on
        # every shard (once per shard in the merge).
        one = os.path.join(tmp, "one.json")
        e = dict(os.environ, BASE=srv.base, WHO="1")
        p = subprocess.run([PACER, "run", write_wf(tmp), "-q", "--progress", "never",
                            "--report", "json:" + one], env=e, capture_output=True, text=True)
        check(p.returncode == 0, "one process: %s" % p.stderr)
        want = collections.Counter(records(json.load(open(one))))
        got = collections.Counter(records(m))
        every = ("steps/http@4", "step", "ok")
        check(got[every] == 3 and want[every] == 1, "the every-shard step: %d" % got[every])
        del got[every], want[every]
        check(got == want, "merged records differ from one process: %s vs %s"
              % (sorted((got - want).items())[:5], sorted((want - got).items())[:5]))
        check(m["run"]["exit_code"] == 0, "merged exit code")
    finally:
        srv.close()


def sc_gitlab(tmp):
    srv = Arrivals()
    try:
        res = run_shards(tmp, srv, 2, lambda k: {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": "2"},
                         lambda k: ["--shard", "auto"])
        for k, rep, rc, err in res:
            check(rc == 0, "shard %d: exit %d: %s" % (k, rc, err))
        check_union(srv, 2)
    finally:
        srv.close()


def sc_killed(tmp):
    srv = Arrivals()
    try:
        res = run_shards(tmp, srv, 3, lambda k: {}, lambda k: ["--shard", "%d/3" % k], kill=2)
        check(res[1][2] == -signal.SIGKILL, "shard 2 was not killed: %s" % (res[1][2],))
        check(not os.path.exists(res[1][1]), "the killed shard wrote a report")
        reps = [res[0][1], res[2][1]]
        out = os.path.join(tmp, "merged.json")
        p = subprocess.run([PACER, "merge"] + reps + ["--report", "json:" + out],
                           capture_output=True, text=True)
        check(p.returncode == 2, "merge without shard 2: exit %d" % p.returncode)
        check("shard 2" in p.stderr and "missing" in p.stderr, "the refusal: %s" % p.stderr)
        check(not os.path.exists(out), "a merged report was written")
    finally:
        srv.close()


KEYED = """\
steps:
  - for_each: ${{ vars.ids }}
    shard_key: item.id
    http: { get: "${{ env.BASE }}/k/${{ item.id }}?shard=${{ env.WHO }}" }
"""


def fnv1a64(text):
    h = 14695981039346656037
    for b in text.encode():
        h ^= b
        h = (h * 1099511628211) % 2 ** 64
    return h


def sc_keyed(tmp):
    wf = os.path.join(tmp, "keyed.yml")
    with open(wf, "w") as f:
        f.write(KEYED)
    ids = ["user-%d" % i for i in range(1, 31)]
    for order in (ids, list(reversed(ids))):
        srv = Arrivals()
        try:
            var = "ids=[%s]" % ", ".join("{id: %s}" % i for i in order)
            procs = [subprocess.Popen([PACER, "run", wf, "-q", "--shard", "%d/3" % k, "--var", var,
                                       "--report", "json:%s/k%d.json" % (tmp, k)],
                                      env=dict(os.environ, BASE=srv.base, WHO=str(k)),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for k in (1, 2, 3)]
            for p in procs:
                _, err = p.communicate(timeout=60)
                check(p.returncode == 0, "a shard failed: %s" % err)
            seen = collections.Counter(p.split("?")[0] for _, p in srv.seen)
            check(sorted(seen) == sorted("/k/" + i for i in ids) and set(seen.values()) == {1},
                  "items seen: %s" % seen)
            for k in (1, 2, 3):
                rule = json.load(open("%s/k%d.json" % (tmp, k)))["shard"]["rule"]
                check(rule == "keyed", "shard %d's rule: %s" % (k, rule))
            for _, p in srv.seen:
                key, who = p[len("/k/"):].split("?shard=")
                check(int(who) == fnv1a64(key) % 3 + 1, "%s ran on shard %s" % (key, who))
        finally:
            srv.close()
    bad = os.path.join(tmp, "bad.yml")
    with open(bad, "w") as f:
        f.write("steps:\n  - for_each: [[1], [2]]\n    shard_key: item\n    log: x\n")
    p = subprocess.run([PACER, "run", bad, "--shard", "1/2"], capture_output=True, text=True)
    check(p.returncode == 3 and "shard_key (bad.yml:3:16) must be a string or a number, got table"
          in p.stderr, "a table key: exit %d: %s" % (p.returncode, p.stderr))


POOLED = """\
pools:
  api: { rate: 20/s }
steps:
  - for_each: ${{ range(1, 40) }}
    pool: api
    http: { get: "${{ env.BASE }}/p/${{ env.WHO }}/${{ item }}" }
"""


def rate_of(times):
    return (len(times) - 1) / (times[-1] - times[0])


def sc_pools(tmp):
    srv = Arrivals()
    try:
        wf = os.path.join(tmp, "pooled.yml")
        with open(wf, "w") as f:
            f.write(POOLED)
        procs = [subprocess.Popen([PACER, "run", wf, "-q", "--shard", "%d/2" % k],
                                  env=dict(os.environ, BASE=srv.base, WHO=str(k)),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in (1, 2)]
        for p in procs:
            _, err = p.communicate(timeout=60)
            check(p.returncode == 0, "a shard failed: %s" % err)
        both = sorted(t for t, p in srv.seen if p.startswith("/p/"))
        check(len(both) == 40, "requests: %d" % len(both))
        check(rate_of(both) <= 20 * 1.1, "together %.1f/s, more than 20/s" % rate_of(both))
        for k in (1, 2):
            mine = sorted(t for t, p in srv.seen if p.startswith("/p/%d/" % k))
            check(len(mine) == 20, "shard %d made %d requests" % (k, len(mine)))
            check(rate_of(mine) <= 10 * 1.1, "shard %d went %.1f/s" % (k, rate_of(mine)))
    finally:
        srv.close()


def sc_cli(tmp):
    wf = write_wf(tmp)
    cases = [
        (["--shard", "0/3"], {}, "--shard expects K/N"),
        (["--shard", "4/3"], {}, "shard 4 of 3"),
        (["--shard", "x"], {}, "--shard expects K/N"),
        (["--shard", "1/"], {}, "--shard expects K/N"),
        (["--shard", "auto"], {}, "neither is set"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "1"}, "needs --shards N"),
        (["--shard", "auto", "--shards", "2"], {"JOB_COMPLETION_INDEX": "2"}, "shard 3 of 2"),
        (["--shard", "auto"], {"JOB_COMPLETION_INDEX": "-1"}, "JOB_COMPLETION_INDEX is"),
        (["--shard", "auto", "--shards", "3"], {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"},
         "disagrees with CI_NODE_TOTAL"),
        (["--shards", "3"], {}, "--shards applies only with --shard auto"),
    ]
    for args, env, msg in cases:
        e = dict(os.environ, BASE="http://127.0.0.1:9", WHO="0")
        for var in ("JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL"):
            e.pop(var, None)
        e.update(env)
        t0 = time.monotonic()
        p = subprocess.run([PACER, "run", wf] + args, env=e, capture_output=True, text=True)
        check(p.returncode == 2, "%s %s: exit %d" % (args, env, p.returncode))
        check(msg in p.stderr, "%s %s: %r not in %r" % (args, env, msg, p.stderr))
        check(p.stdout == "", "%s: something ran" % args)
        check(time.monotonic() - t0 < 5, "%s: slow" % args)


SCENARIOS = {"jobs": sc_jobs, "gitlab": sc_gitlab, "killed": sc_killed, "keyed": sc_keyed,
             "pools": sc_pools,
             "cli": sc_cli}


def main():
    return scenarios.main(SCENARIOS, "pacer-shard-run-", globals())


if __name__ == "__main__":
    sys.exit(main())
