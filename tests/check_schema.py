#!/usr/bin/env python3
"""Checks `pacer schema` with a real JSON Schema validator.

Usage: check_schema.py --pacer PATH

  - the output is JSON and a valid draft-07 schema (jsonschema's
    Draft7Validator.check_schema), and it is schema/workflow.schema.json
    (the base the build embeds; the schema is never a C string) with the
    action parts runner/load/schema.c adds for each built-in action, and
    nothing else: the base names no action;
  - the action parts have their shape: each branch of the step's oneOf
    requires one key, and each key that is not a group (steps, gather) is
    a property that is only a $ref to the definition named after it;
  - every workflows/*.yml and tests/cases/*.yml that `pacer validate`
    accepts validates against it too (the schema never rejects a good file);
  - a set of invalid workflows is rejected, each for the expected reason.

YAML is read as YAML 1.2 (the core schema pacer uses): only true/false are
booleans, so `on:` in retry stays a key (PyYAML alone would turn it into
True, as YAML 1.1 did). Needs Debian's python3-jsonschema and python3-yaml.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


class Yaml12Loader(yaml.SafeLoader):
    pass


# Drop YAML 1.1's yes/no/on/off booleans and sexagesimal numbers.
Yaml12Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool",
                                                  "tag:yaml.org,2002:timestamp")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                                   list("tf"))

# Each invalid document, and a word the validator's complaint must contain.
INVALID = [
    ("unknown top-level key", "name: x\nstepz: []\nsteps: [{log: hi}]\n", "stepz"),
    ("no steps", "name: x\n", "steps"),
    ("empty steps", "steps: []\n", "steps"),
    ("unknown step key", "steps: [{log: hi, retries: 3}]\n", "retries"),
    ("two actions", "steps: [{log: hi, sleep: 1s}]\n", "oneOf"),
    ("no action", "steps: [{id: x}]\n", "oneOf"),
    ("bad id", "steps: [{id: Bad-Id, log: hi}]\n", "id"),
    ("bad duration", "steps: [{sleep: 1s, timeout: 5 seconds}]\n", "timeout"),
    ("bad rate", "pools: {p: {rate: 10 per second}}\nsteps: [{log: hi}]\n", "rate"),
    ("burst without rate", "pools: {p: {concurrency: 2, burst: 3}}\nsteps: [{log: hi}]\n",
     "rate"),
    ("concurrency on a leaf", "steps: [{log: hi, concurrency: 3}]\n", "concurrency"),
    ("retry on a group", "steps: [{steps: [{log: hi}], retry: {attempts: 2}}]\n", "retry"),
    ("bad retry.on", "steps: [{log: hi, retry: {on: [sometimes]}}]\n", "on"),
    ("bad status class", "steps: [{http: {get: x}, expect: {status: 2xy}}]\n", "status"),
    ("with without uses", "steps: [{log: hi, with: {a: 1}}]\n", "with"),
    ("exec not a list", "steps: [{exec: 42}]\n", "exec"),
    ("http without url", "steps: [{http: {method: GET}}]\n", "http"),
    ("until without within", "steps: [{log: hi, until: \"true\"}]\n", "within"),
    ("fail_if without until", "steps: [{log: hi, fail_if: \"true\"}]\n", "until"),
    ("until on a group", "steps: [{steps: [{log: hi}], until: \"true\", within: 1s}]\n", "until"),
    ("matrix not a map", "steps: [{log: hi, for_each: {matrix: [a]}}]\n", "for_each"),
    ("background not a boolean", "steps: [{log: hi, background: sometimes}]\n", "background"),
    ("trace_context not a boolean",
     "defaults: {http: {trace_context: \"yes\"}}\nsteps: [{log: hi}]\n", "trace_context"),
]


def load_yaml(path_or_text, is_text=False):
    if is_text:
        return yaml.load(path_or_text, Loader=Yaml12Loader)
    with open(path_or_text, encoding="utf-8") as f:
        return yaml.load(f, Loader=Yaml12Loader)


GROUPS = {"steps", "gather"}


def action_parts_problems(schema):
    """The places a generator will fill from the parameter tables."""
    out = []
    defs = schema.get("definitions", {})
    step = defs.get("step", {})
    props = step.get("properties", {})
    keys = []
    for branch in step.get("oneOf", []):
        req = branch.get("required", [])
        if req == ["wait"]:  # a step of `wait:` alone: no action, part of the base
            continue
        if set(branch) != {"required"} or len(req) != 1:
            out.append("definitions.step.oneOf: each branch is {\"required\": [KEY]}, got %r"
                       % branch)
            continue
        keys.append(req[0])
    for key in keys:
        if key in GROUPS:
            continue
        if props.get(key) != {"$ref": "#/definitions/" + key}:
            out.append("definitions.step.properties.%s: must be only {\"$ref\": "
                       "\"#/definitions/%s\"}" % (key, key))
        if key not in defs:
            out.append("definitions.%s: the action's value schema is missing" % key)
    if not out:
        print("ok %d action parts in generator shape" % (len(keys) - len(GROUPS)))
    return out


# The built-in actions (runner/cli/builtins.c), in its order, with the key
# of their defaults (None: none).
BUILTIN_ACTIONS = [("sleep", None), ("log", None), ("assert", None), ("http", "http"),
                   ("uses", None), ("lua", None), ("exec", None), ("shell", None)]


def base_problems(base):
    """The embedded base names no action: the parts below are generated."""
    out = []
    step = base.get("definitions", {}).get("step", {})
    for branch in step.get("oneOf", []):
        if branch.get("required", [None])[0] not in GROUPS | {"wait"}:
            out.append("schema/workflow.schema.json: definitions.step.oneOf has %r: the "
                       "actions' branches are generated (runner/load/schema.c)" % branch)
    for key, _ in BUILTIN_ACTIONS:
        if key in step.get("properties", {}):
            out.append("schema/workflow.schema.json: definitions.step.properties.%s: the "
                       "actions' references are generated (runner/load/schema.c)" % key)
    return out


def with_action_parts(base, actions):
    """The base with the parts runner/load/schema.c adds for `actions`."""
    s = json.loads(json.dumps(base))
    defs = s["definitions"]
    step = defs["step"]
    for key, dkey in actions:
        if key not in base["definitions"]:
            defs[key] = {"description": "The `%s` action (any value here: pacer checks it)."
                                        % key}
        step["properties"][key] = {"$ref": "#/definitions/" + key}
        step["oneOf"].append({"required": [key]})
        if dkey:
            d = dkey + "_defaults"
            s["properties"]["defaults"]["properties"][dkey] = (
                {"$ref": "#/definitions/" + d} if d in base["definitions"] else {"type": "object"})
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", default=os.environ.get("PACER") or os.path.join(
        HERE, "..", "build", "pacer"))
    opts = ap.parse_args()
    p = subprocess.run([os.path.abspath(opts.pacer), "schema"], capture_output=True, text=True,
                       timeout=30)
    problems = []
    if p.returncode != 0:
        print("FAIL: pacer schema exited %d: %s" % (p.returncode, p.stderr), file=sys.stderr)
        return 1
    schema = json.loads(p.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    print("ok schema is valid draft-07")
    with open(os.path.join(HERE, "..", "schema", "workflow.schema.json"), encoding="utf-8") as f:
        base = json.load(f)
    problems += base_problems(base)
    if with_action_parts(base, BUILTIN_ACTIONS) != schema:
        problems.append("`pacer schema` is not schema/workflow.schema.json with the action parts "
                        "of the built-in actions (%s)" % ", ".join(a for a, _ in BUILTIN_ACTIONS))
    problems += action_parts_problems(schema)

    # The schema must accept whatever the loader accepts. Files the loader
    # rejects (cases about load errors) are skipped: the loader checks more
    # than a schema can (pools, ids, expressions), so either answer is fine.
    files = sorted(glob.glob(os.path.join(HERE, "..", "workflows", "*.yml")) +
                   glob.glob(os.path.join(HERE, "cases", "*.yml")))
    # One `pacer validate` over every file: it prints "FILE: ok" for each
    # valid one (and reports the rest on stderr).
    v = subprocess.run([os.path.abspath(opts.pacer), "validate"] + files,
                       capture_output=True, text=True, timeout=60)
    ok = {line[:-len(": ok")] for line in v.stdout.splitlines() if line.endswith(": ok")}
    files = [path for path in files if path in ok]
    before = len(problems)
    for path in files:
        doc = load_yaml(path)
        errs = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errs:
            problems.append("%s: %s at %s" % (os.path.relpath(path, HERE), errs[0].message[:300],
                                              "/".join(map(str, errs[0].absolute_path))))
    print("ok %d workflow files validate" % len(files)
          if len(problems) == before else "FAIL some workflow files do not validate")

    for what, text, word in INVALID:
        errs = list(validator.iter_errors(load_yaml(text, is_text=True)))
        if not errs:
            problems.append("invalid workflow accepted: %s" % what)
            continue
        said = " ".join("%s %s %s" % (e.message, "/".join(map(str, e.absolute_path)),
                                      e.validator) for e in errs)
        if word not in said:
            problems.append("%s: rejected, but not for %r: %s" % (what, word, said[:300]))
    if not any(pr.startswith(("invalid", "%s:" % w)) for pr in problems for w, _, _ in INVALID):
        print("ok %d invalid workflows rejected" % len(INVALID))
    sys.stdout.flush()

    for pr in problems:
        print("FAIL " + pr, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
