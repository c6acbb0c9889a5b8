"""scenarios.py: what the scenario scripts of the test suite share.

check_merge.py, check_reports.py, check_outfile.py, check_shard_run.py and
check_shared_pool.py are each a table SCENARIOS of named checks that a
workflow case runs (tests/cases/*.yml: an `exec` step naming the
scenarios). They share one command line and one way to run the table:
`--pacer PATH [their own options] [SCENARIO...]` (none named: all of
them); each scenario is called with a fresh temporary directory, and every
one is reported, `ok NAME` or `FAIL NAME: why`, before the exit status
says whether any failed. A scenario fails by raising: an AssertionError
or a Failure from check(), or any other exception (a scenario that
crashes has failed too). The helpers check() and write() are the ones
those scripts' scenarios use. A script's whole main is
`sys.exit(scenarios.main(SCENARIOS, PREFIX, globals()))`.
"""

import argparse
import os
import sys
import tempfile


class Failure(AssertionError):
    """A check of a scenario that did not hold (an AssertionError, so a
    script that catches those catches it too)."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def parse_args(scenarios, add_arguments=None, pacer_default=None, description=None):
    """The scenario script's command line: --pacer (required unless
    pacer_default is given; made absolute), the options add_arguments(ap)
    adds, and the scenario names, each of which must be a key of
    `scenarios` (none: all of them, in table order)."""
    ap = argparse.ArgumentParser(description=description)
    if pacer_default is None:
        ap.add_argument("--pacer", required=True, help="the pacer binary to test")
    else:
        ap.add_argument("--pacer", default=pacer_default, help="the pacer binary to test")
    if add_arguments:
        add_arguments(ap)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                    help="of: %s (default: all)" % ", ".join(scenarios))
    opts = ap.parse_args()
    unknown = [n for n in opts.scenarios if n not in scenarios]
    if unknown:
        ap.error("unknown scenario %s (choose from %s)" % (", ".join(unknown),
                                                             ", ".join(scenarios)))
    opts.scenarios = opts.scenarios or list(scenarios)
    opts.pacer = os.path.abspath(opts.pacer)
    return opts


def run(scenarios, names, prefix):
    """Runs scenarios[name](tmp) for each name, each in a new temporary
    directory named prefix..., reporting every one. Returns the exit status:
    0 if all passed, 1 if any failed."""
    failed = 0
    for name in names:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            try:
                scenarios[name](tmp)
                print("ok " + name, flush=True)
            except Exception as e:  # report every scenario, then fail
                failed += 1
                sys.stdout.flush()
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e), file=sys.stderr,
                      flush=True)
    return 1 if failed else 0


def main(scenarios, prefix, script_globals, **parse_kw):
    """The whole main() of a scenario script: parse_args(scenarios,
    **parse_kw), then each option is set as the script's global of its name
    in capitals (--pacer as PACER, --http as HTTP), then run(). Returns the
    exit status."""
    opts = parse_args(scenarios, **parse_kw)
    for name, value in vars(opts).items():
        if name != "scenarios":
            script_globals[name.upper()] = value
    return run(scenarios, opts.scenarios, prefix)
