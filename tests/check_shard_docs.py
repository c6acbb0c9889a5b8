#!/usr/bin/env python3
"""Checks the manifests of docs/shards.md: the fenced YAML blocks that
begin with `# file: NAME`.

Usage: check_shard_docs.py --pacer PATH --docs docs/shards.md

For each manifest (Kubernetes Indexed Job and merge Job, GitHub Actions
matrix, GitLab parallel:): it parses as YAML; its structure is what the doc
says (Indexed completion mode, completions = --shards, a retry per index;
a matrix whose list matches /N, artifacts up and down, a merge job after;
parallel: N with --shard auto, a merge job that needs it); and pacer's own
command lines, run with the values the engine would put in (the index
variables, the matrix value) in a scratch directory, make N real shard
reports that say they are shard K of N, which the manifest's merge command
merges (exit 0, the reports written).

Prints "ok MANIFEST" per manifest; exits 1 on failure.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from scenarios import check

PACER = None
FLOW = """\
steps:
  - log: setup
    shard: one
  - for_each: ${{ range(1, 10) }}
    log: item ${{ item }}
"""


def manifests(doc):
    text = open(doc).read()
    out = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        m = re.match(r"# file: (\S+)\n", block)
        if m:
            out[m.group(1)] = block
    return out


def scratch(tmp):
    """A directory where `pacer`, `build/pacer` and `flow.yml` exist."""
    os.makedirs(os.path.join(tmp, "bin"))
    os.makedirs(os.path.join(tmp, "build"))
    os.symlink(os.path.abspath(PACER), os.path.join(tmp, "bin", "pacer"))
    os.symlink(os.path.abspath(PACER), os.path.join(tmp, "build", "pacer"))
    with open(os.path.join(tmp, "flow.yml"), "w") as f:
        f.write(FLOW)
    return dict(os.environ, PATH=os.path.join(tmp, "bin") + ":" + os.environ["PATH"])


def sh(cmd, tmp, env):
    p = subprocess.run(["sh", "-c", cmd], cwd=tmp, env=env, capture_output=True, text=True,
                       timeout=60)
    check(p.returncode == 0, "%r: exit %d: %s" % (cmd, p.returncode, p.stderr))
    return p


def clean_env(env):
    e = dict(env)
    for var in ("JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL"):
        e.pop(var, None)
    return e


def shard_reports(paths, n):
    check(len(paths) == n, "%d shard reports: %s" % (len(paths), paths))
    seen = set()
    for p in paths:
        r = json.load(open(p))
        check(r["shard"]["count"] == n and r["shard"]["rule"] == "striped",
              "%s: %s" % (p, r["shard"]))
        seen.add(r["shard"]["index"])
    check(seen == set(range(1, n + 1)), "shard indexes %s" % sorted(seen))


def merged(tmp, names):
    for n in names:
        check(os.path.getsize(os.path.join(tmp, n)) > 0, "the merge wrote no %s" % n)


def check_k8s(block, tmp):
    env = clean_env(scratch(tmp))
    docs = list(yaml.safe_load_all(block))
    check(len(docs) == 2 and all(d["kind"] == "Job" for d in docs), "two Jobs")
    job, merge = docs
    spec = job["spec"]
    check(spec["completionMode"] == "Indexed", "completionMode")
    n = spec["completions"]
    check(spec["parallelism"] == n and "backoffLimitPerIndex" in spec, "parallelism, retries")
    c = spec["template"]["spec"]["containers"][0]
    args = c["args"]
    check(args[:1] == ["run"] and args[args.index("--shard") + 1] == "auto"
          and args[args.index("--shards") + 1] == str(n), "pacer's args: %s" % args)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    check(mounts["reports"] == "/reports", "the reports volume")
    reports = os.path.join(tmp, "reports")
    os.makedirs(reports)
    for idx in range(n):
        # What Kubernetes does: $(VAR) in args from the container's env.
        a = [x.replace("$(JOB_COMPLETION_INDEX)", str(idx)).replace("/work/", tmp + "/")
             .replace("/reports/", reports + "/") for x in args]
        e = dict(env, JOB_COMPLETION_INDEX=str(idx))
        p = subprocess.run(["pacer"] + a, cwd=tmp, env=e, capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0, "shard %d: %s" % (idx, p.stderr))
    shard_reports(sorted(glob.glob(os.path.join(reports, "shard-*.json"))), n)
    mc = merge["spec"]["template"]["spec"]["containers"][0]
    check(mc["command"] == ["sh", "-c"] and len(mc["args"]) == 1, "the merge container")
    sh(mc["args"][0].replace("/reports/", reports + "/"), tmp, env)
    merged(reports, ["all.xml", "all.html"])


def check_github(block, tmp):
    env = clean_env(scratch(tmp))
    wf = yaml.safe_load(block)
    shard = wf["jobs"]["shard"]
    mat = shard["strategy"]["matrix"]["shard"]
    check(shard["strategy"]["fail-fast"] is False, "fail-fast: false")
    n = len(mat)
    check(mat == list(range(1, n + 1)), "the matrix %s" % mat)
    runs = [s["run"] for s in shard["steps"] if "pacer run" in s.get("run", "")]
    check(len(runs) == 1 and ("/%d " % n) in runs[0], "the run step names /%d: %s" % (n, runs))
    ups = [s for s in shard["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    check(len(ups) == 1 and ups[0]["if"] == "always()", "the upload of each shard's report")
    for k in mat:
        sh(runs[0].replace("${{ matrix.shard }}", str(k)), tmp, env)
    shard_reports(sorted(glob.glob(os.path.join(tmp, "reports", "shard-*.json"))), n)
    merge = wf["jobs"]["merge"]
    check(merge["needs"] == "shard" and merge["if"] == "always()", "the merge job's needs")
    downs = [s for s in merge["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    check(len(downs) == 1 and downs[0]["with"]["path"] == "reports"
          and downs[0]["with"]["merge-multiple"] is True, "the download into reports/")
    mruns = [s["run"] for s in merge["steps"] if "pacer merge" in s.get("run", "")]
    check(len(mruns) == 1, "one merge step")
    sh(mruns[0], tmp, env)
    merged(tmp, ["all.xml", "all.html"])


def check_gitlab(block, tmp):
    env = clean_env(scratch(tmp))
    ci = yaml.safe_load(block)
    n = ci["shard"]["parallel"]
    script = ci["shard"]["script"]
    check(len(script) == 1 and "--shard auto" in script[0], "the shard script: %s" % script)
    check(ci["shard"]["artifacts"]["when"] == "always", "artifacts when: always")
    for k in range(1, n + 1):
        sh(script[0], tmp, dict(env, CI_NODE_INDEX=str(k), CI_NODE_TOTAL=str(n)))
    shard_reports(sorted(glob.glob(os.path.join(tmp, "reports", "shard-*.json"))), n)
    merge = ci["merge"]
    check(merge["needs"] == ["shard"] and merge["when"] == "always", "the merge job")
    check(merge["artifacts"]["reports"]["junit"] == "all.xml", "the JUnit report for GitLab")
    for line in merge["script"]:
        sh(line, tmp, env)
    merged(tmp, ["all.xml", "all.html"])


CHECKS = {"k8s-indexed-job.yaml": check_k8s, "github-actions.yml": check_github,
          "gitlab-ci.yml": check_gitlab}


def main():
    global PACER
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", required=True)
    ap.add_argument("--docs", required=True)
    a = ap.parse_args()
    PACER = a.pacer
    found = manifests(a.docs)
    failed = False
    if sorted(found) != sorted(CHECKS):
        print("FAIL: manifests in %s: %s, expected %s" % (a.docs, sorted(found), sorted(CHECKS)))
        failed = True
    for name, fn in CHECKS.items():
        if name not in found:
            continue
        tmp = tempfile.mkdtemp()
        try:
            fn(found[name], tmp)
            print("ok", name)
        except (AssertionError, KeyError, TypeError, ValueError, yaml.YAMLError) as e:
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            failed = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
