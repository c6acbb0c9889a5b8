#!/usr/bin/env python3
"""Builds the seed corpora for the libFuzzer harnesses.

    tests/fuzz/build_corpus.py OUT_DIR

OUT_DIR/load/  every workflow in the repository: workflows/*.yml and
               tests/**/*.yml (good cases and the bad-input catalogue), as is.
OUT_DIR/expr/  every ${{ }} expression and bare condition (if:, assert:,
               expect.that) found in those files, in the three modes of
               fuzz_expr.c (first byte 0: bare expression, 1: template
               text, 2: bare expression also formatted), plus a few
               hand-written seeds for the helpers.

Files are named by the SHA-1 of their content, as libFuzzer does, so
rebuilding over an existing corpus adds nothing twice.
"""
import glob
import hashlib
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

EXPR_SEEDS = [
    "len(vars.list) == 3",
    "steps.top.outcome == 'ok' and steps.top.json[2] == 20",
    "slice(vars.list, 2, 3)",
    "range(1, 5)",
    "join(keys(vars.map), ',')",
    "contains(vars.name, 'ace')",
    "json(vars.map)",
    "from_json('{\"a\":[1,2,{\"b\":null}]}')",
    "urlencode('a b&c/d?e=é')",
    "default(vars.missing, 'fallback')",
    "secret('token-value') .. '!'",
    "secrets.HOME",
    "env.PATH ~= nil",
    "now() > 0",
    "math.floor(vars.half * 2) // 1",
    "string.format('%5.2f|%q', vars.half, vars.name)",
    "workflow.name .. '/' .. workflow.run_id",
    "#vars.list + index",
    "item == nil",
    "{1, 'two', {x = false}, vars.map}",
    "(function() return 1 end)()",
    "vars.n > 2 and 'big' or 'small'",
    "2^53 + 0.5",
    "-0.0",
    "1/0",
    "math.mininteger // -1",
]
TEMPLATE_SEEDS = [
    "item ${{ index }} of ${{ len(vars.list) }}",
    "${{ vars.map }}",
    "${{ vars.nope }}",
    "a ${{ 1 }} b ${{ 'x' }} c ${{ {1,2} }}",
    "${{ vars.n }}${{ vars.half }}",
    "${{",
    "${{ }}",
    "}} ${{ 1 }} }}",
]


def sources():
    pats = ["workflows/*.yml", "tests/**/*.yml", "tests/**/*.wf"]
    seen = set()
    for pat in pats:
        for path in sorted(glob.glob(os.path.join(ROOT, pat), recursive=True)):
            if "/build" in os.path.relpath(path, ROOT).split(os.sep)[0]:
                continue
            if path not in seen:
                seen.add(path)
                yield path


def put(d, data):
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        return 1
    return 0


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    nload = nexpr = 0
    exprs, templates = set(EXPR_SEEDS), set(TEMPLATE_SEEDS)
    for path in sources():
        with open(path, "rb") as f:
            data = f.read()
        nload += put(os.path.join(out, "load"), data)
        text = data.decode("utf-8", "replace")
        for m in re.finditer(r"\$\{\{(.*?)\}\}", text):
            exprs.add(m.group(1).strip())
        for m in re.finditer(r"^\s*-?\s*(?:if|log|for_each):\s*(.+?)\s*$", text, re.M):
            v = m.group(1).strip("\"'")
            (templates if "${{" in v else exprs).add(v)
    for e in sorted(exprs):
        if not e:
            continue
        b = e.encode()
        nexpr += put(os.path.join(out, "expr"), b"\x00" + b)
        nexpr += put(os.path.join(out, "expr"), b"\x02" + b)
    for t in sorted(templates):
        nexpr += put(os.path.join(out, "expr"), b"\x01" + t.encode())
    print("corpus: %d new load seeds, %d new expr seeds in %s" % (nload, nexpr, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
