#!/usr/bin/env python3
"""Runs the README's command lines as a newcomer would type them.

Usage: check_readme.py --pacer PATH --readme README.md

Every line of a ```sh block that starts with `build/pacer` is run from a
scratch copy of the checkout's workflows/ (so reports, locks and journals
land in the scratch directory, and `build/pacer` is the binary given),
with the run history kept in the scratch directory too. The comment after
`#` is dropped, as the shell would. Each must exit 0 within 60 s; `/tmp/...`
paths in a command are moved into the scratch directory.

Prints "ok COMMAND" per command; exits 1 on the first failure.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile


def commands(readme):
    out = []
    in_sh = False
    for line in open(readme, encoding="utf-8"):
        s = line.rstrip("\n")
        if s.startswith("```"):
            in_sh = s.strip() in ("```sh", "```bash", "```shell")
            continue
        if in_sh and s.startswith("build/pacer"):
            out.append(shlex.split(s, comments=True))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", required=True)
    ap.add_argument("--readme", required=True)
    a = ap.parse_args()
    pacer = os.path.abspath(a.pacer)
    root = os.path.dirname(os.path.abspath(a.readme))
    cmds = commands(a.readme)
    if len(cmds) < 5:
        print("README: only %d build/pacer commands found" % len(cmds))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(root, "workflows"), os.path.join(tmp, "workflows"))
        os.makedirs(os.path.join(tmp, "build"))
        os.symlink(pacer, os.path.join(tmp, "build", "pacer"))
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
        for argv in cmds:
            argv = [re.sub(r"^/tmp/", tmp + "/", x) for x in argv]
            shown = " ".join(shlex.quote(x) for x in argv).replace(tmp + "/", "")
            try:
                p = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True,
                                   timeout=60)
            except subprocess.TimeoutExpired:
                print("FAIL %s: still running after 60 s" % shown)
                return 1
            if p.returncode != 0:
                print("FAIL %s: exit %d\n%s" % (shown, p.returncode, p.stderr[-2000:]))
                return 1
            print("ok " + shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
