#!/usr/bin/env python3
"""Writes one hostile but valid-sized workflow (under the 4 MiB and 200 000
node limits) for validate_hostile_sizes.yml: hostile_sizes.py KIND FILE.
Each kind once took pacer validate quadratic time (seconds to minutes)."""
import sys

LIMIT = 4 * 1024 * 1024


def exprs(n):
    return 'steps:\n  - log: "' + "a${{ 1 }}" * n + '"\n'


KINDS = {
    # one string holding many ${{ }} (positions were found by rescanning it)
    "exprs": lambda: exprs(99000),
    # past the limit on expressions: an error, found as fast
    "exprs_over": lambda: exprs(100001),
    # many mistakes: the first 100 are printed, the rest counted
    "errors": lambda: 'steps:\n  - log: "' + "${{ }}" * 300000 + '"\n',
    # many headers in one request (each looked up by name in the template)
    "headers": lambda: "steps:\n  - http:\n      get: http://127.0.0.1:9/\n      headers:\n"
    + "".join("        X-H%d: v\n" % i for i in range(90000)),
    # many unknown keys in one step (each formatted with the whole key list)
    "step_keys": lambda: "steps:\n  - log: x\n"
    + "".join("    zz%d: 1\n" % i for i in range(90000)),
    # many steps naming many pools, known and unknown (scanned per step)
    "pools": lambda: "pools:\n"
    + "".join("  p%d: {concurrency: 1}\n" % i for i in range(20000))
    + "steps:\n"
    + "".join("  - {log: x, pool: %s%d}\n" % ("pq"[i % 2], i) for i in range(20000)),
    # many inline lua steps (each padded to its line number)
    "lua": lambda: "steps:\n" + "".join('  - {lua: "return %d"}\n' % i for i in range(40000)),
    # many lua blocks (the file was read again for each)
    "lua_blocks": lambda: "steps:\n"
    + "".join("  - lua: |\n      return %d\n" % i for i in range(20000)),
    # many uses steps (the step's node was searched in the whole tree)
    "uses": lambda: "steps:\n" + "".join("  - {uses: greet, with: {name: x}}\n" for _ in range(25000)),
    # many steps with ids, referring to each other
    "ids": lambda: "steps:\n"
    + "".join("  - {id: s%d, log: \"${{ steps.s%d.outcome }}\"}\n" % (i, max(i - 1, 0))
              for i in range(30000)),
    # many vars, all used
    "vars": lambda: "vars:\n" + "".join("  v%d: %d\n" % (i, i) for i in range(60000))
    + "steps:\n  - log: \"" + "".join("${{ vars.v%d }}" % i for i in range(0, 60000, 3)) + '"\n',
    # retry.on codes in defaults, inherited by every step (copied per step:
    # 9 GB of memory)
    "retry_codes": lambda: "defaults:\n  retry:\n    on: ["
    + ", ".join(str(100 + i % 500) for i in range(60000)) + "]\nsteps:\n"
    + "".join("  - log: x\n" for _ in range(40000)),
    # one long string
    "long": lambda: 'steps:\n  - log: "' + "a" * (LIMIT - 100) + '"\n',
}

if __name__ == "__main__":
    text = KINDS[sys.argv[1]]()
    assert len(text) <= LIMIT, len(text)
    with open(sys.argv[2], "w") as f:
        f.write(text)
