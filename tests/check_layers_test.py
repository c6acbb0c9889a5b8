#!/usr/bin/env python3
"""check_layers_test.py: self-tests of tests/check_layers.py.

Each test writes a tiny fake source tree (runner/ with a few files) into a
temporary directory, runs the checker over it, and checks the exit status
and the messages: one test per rule that the rule fires where it should and
stays quiet where it should not, and the allowlist's rules (a listed
violation passes, a stale line fails, a line without a reason is refused).
Run by ctest (check_layers_selftest) and by hand:
    python3 tests/check_layers_test.py -v
"""

import contextlib
import io
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_layers  # noqa: E402


def opening(rel):
    name = os.path.basename(rel)
    return "/* %s: a fake file in the self-test of the layer checker, here to be\n" \
           " * scanned. */\n" % name


class Tree:
    """A fake source tree; files get a proper opening paragraph unless
    raw=True."""

    def __init__(self, test):
        self.dir = tempfile.TemporaryDirectory(prefix="check_layers_test.")
        test.addCleanup(self.dir.cleanup)
        self.root = self.dir.name
        os.makedirs(os.path.join(self.root, "runner"))
        os.makedirs(os.path.join(self.root, "tests"))

    def add(self, rel, body="", raw=False):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(body if raw else opening(rel) + body)
        return self

    def allow(self, text):
        with open(os.path.join(self.root, "tests", "layers_allow.txt"), "w") as f:
            f.write(text)
        return self

    def run(self, *args):
        out = io.StringIO()
        err = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = check_layers.main(["--root", self.root] + list(args))
        return rc, out.getvalue() + err.getvalue()


def clean_tree(test):
    t = Tree(test)
    t.add("runner/base/util.h", "int pc_util(void);\n")
    t.add("runner/base/util.c", '#include "base/util.h"\n')
    t.add("runner/model/workflow.h", '#include "base/util.h"\n')
    t.add("runner/core/task.h", '#include "model/workflow.h"\n')
    t.add("runner/core/task.c", '#include "core/task.h"\n#include "base/util.h"\n')
    t.add("runner/core/run.c", '#include "core/task.h"\n')
    t.add("runner/http/session.c", '#include <curl/curl.h>\n#include "base/util.h"\n')
    t.add("runner/cli/cli.c", '#include "core/task.h"\n#include "http/session.c"\n')
    return t


class CheckLayersTest(unittest.TestCase):
    def assertViolation(self, out, where, rule):
        self.assertIn("%s: %s:" % (where, rule), out)

    def test_clean_tree_passes(self):
        rc, out = clean_tree(self).run()
        self.assertEqual(rc, 0, out)
        self.assertIn("0 new violations", out)

    def test_layer_lower_includes_higher(self):
        t = clean_tree(self)
        t.add("runner/base/pool.h", '#include <uv.h>\n\n#include "model/workflow.h"\n')
        t.add("runner/core/task.c", '#include "core/task.h"\n#include "core/run.h"\n')
        t.add("runner/core/run.h", "struct pc_run;\n")
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/base/pool.h:5", "layer")
        self.assertIn('"model/workflow.h" (layer 1', out)
        self.assertViolation(out, "runner/core/task.c:4", "layer")  # engine -> run driver
        self.assertIn("To do:", out)
        # Downward includes are fine: core/run.c -> core/task.h (but task.c's
        # include back up closes a circle).
        self.assertNotIn("runner/core/run.c:3: layer", out)
        self.assertViolation(out, "runner/core/run", "cycle")

    def test_layer_exceptions_of_a_folder(self):
        t = clean_tree(self)
        # http/action.c is an action (3): it may include http/ services (2)...
        t.add("runner/http/action.c", '#include "http/session.h"\n')
        t.add("runner/http/session.h", "struct s;\n")
        # ... but http/session.c (2) may not include http/action.h (3).
        t.add("runner/http/action.h", "struct a;\n")
        t.add("runner/http/rules.c", '#include "http/action.h"\n')
        # core/watchdog.c (5) may include core/task.h (4).
        t.add("runner/core/watchdog.c", '#include "core/task.h"\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/http/rules.c:3", "layer")
        self.assertNotIn("runner/http/action.c:", out)
        self.assertNotIn("runner/core/watchdog.c:", out)

    def test_include_without_folder_and_unknown_folder(self):
        t = clean_tree(self)
        t.add("runner/core/attempt.c", '#include "task.h"\n')
        t.add("runner/weird/thing.c", '#include "base/util.h"\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/core/attempt.c:3", "include-path")
        self.assertViolation(out, "runner/weird/thing.c", "unknown-layer")

    def test_commented_out_include_is_ignored(self):
        t = clean_tree(self)
        t.add("runner/base/log.c", '/* #include "core/task.h" */\n// #include "cli/cli.h"\n'
              '#include "base/util.h" /* "core/task.h" */\n')
        rc, out = t.run()
        self.assertEqual(rc, 0, out)

    def test_cycle_within_a_layer(self):
        t = clean_tree(self)
        t.add("runner/core/a.h", "struct a;\n")
        t.add("runner/core/b.h", "struct b;\n")
        t.add("runner/core/a.c", '#include "core/a.h"\n#include "core/b.h"\n')
        t.add("runner/core/b.c", '#include "core/b.h"\n#include "core/a.h"\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/core/a", "cycle")
        self.assertIn("2 modules include each other in a circle (runner/core/a runner/core/b)",
                      out)
        self.assertIn('runner/core/a.c:4 includes "core/b.h"', out)
        rc, sugg = t.run("--suggest")
        self.assertIn("cycle runner/core/a runner/core/b -- TODO", sugg)

    def test_a_module_including_its_own_header_is_no_cycle(self):
        t = clean_tree(self)
        t.add("runner/core/a.h", '#include "core/task.h"\n')
        t.add("runner/core/a.c", '#include "core/a.h"\n#include "core/task.h"\n')
        rc, out = t.run()
        self.assertEqual(rc, 0, out)

    def test_engine_names_an_action(self):
        t = clean_tree(self)
        t.add("runner/http/http.h", "int pc_http_start(void);\n")
        t.add("runner/core/task.c",
              '#include "core/task.h"\n'
              '#include "http/http.h"\n'
              "/* pc_http_start, PC_ACT_HTTP and \"exec\" in a comment are fine */\n"
              "static int f(int k) {\n"
              "  if (k == PC_STEP_GATHER || k == PC_STEP_SEQUENCE) return 0; /* step kinds */\n"
              "  if (k == PC_ACT_HTTP) return pc_http_start();\n"
              '  const char *key = "exec";\n'
              '  const char *schema = "{\\"shell\\": 1}";\n'
              '  const char *label = "execute";\n'
              "  return key[0] + schema[0] + label[0];\n"
              "}\n")
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/core/task.c:4", "names-action")  # the include
        self.assertIn("include:http/http.h", out)
        self.assertViolation(out, "runner/core/task.c:8", "names-action")
        self.assertIn("PC_ACT_HTTP", out)
        self.assertIn("pc_http_start", out)
        self.assertViolation(out, "runner/core/task.c:9", "names-action")
        self.assertViolation(out, "runner/core/task.c:10", "names-action")
        self.assertNotIn("PC_STEP_GATHER", out)
        self.assertNotIn("PC_STEP_SEQUENCE", out)
        self.assertNotIn('"execute"', out)
        self.assertNotIn("runner/core/task.c:5", out)  # the comment line
        # The same code in an action is fine.
        t2 = clean_tree(self)
        t2.add("runner/http/http.h", "int pc_http_start(void);\n")
        t2.add("runner/http/action.c", '#include "http/http.h"\n'
               'static const char *k = "http";\nint f(void) { return pc_http_start(); }\n')
        rc, out = t2.run()
        self.assertEqual(rc, 0, out)

    def test_loader_and_reports_name_no_action(self):
        t = clean_tree(self)
        t.add("runner/load/load.c", "int f(void) { return pc_uses_check(); }\n")
        t.add("runner/report/json.c", 'static const char *k = "sleep";\n')
        t.add("runner/script/plugin.h", "struct p;\n")
        t.add("runner/load/refs.c", '#include "script/plugin.h"\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/load/load.c:3", "names-action")
        self.assertViolation(out, "runner/report/json.c:3", "names-action")
        self.assertViolation(out, "runner/load/refs.c:3", "names-action")

    def test_transport_without_lua(self):
        t = clean_tree(self)
        t.add("runner/http/session.c", "#include <lauxlib.h>\n")
        t.add("runner/http/spec.h", "#include <lua.h>\n")
        t.add("runner/http/request.c", '#include "http/spec.h"\n')
        t.add("runner/script/host.h", "struct pc_lua;\n")
        t.add("runner/http/rules.h", '#include "script/host.h"\n')
        # spec.c builds the spec from Lua: it may.
        t.add("runner/http/spec.c", '#include "http/spec.h"\n#include <lua.h>\n')
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/http/session.c:3", "transport-lua")
        self.assertViolation(out, "runner/http/request.c:3", "transport-lua")
        self.assertIn("runner/http/request.c:3 includes http/spec.h -> runner/http/spec.h:3 "
                      "includes lua.h", out)
        self.assertViolation(out, "runner/http/rules.h:3", "transport-lua")
        self.assertNotIn("runner/http/spec.c:", out)

    def test_file_size(self):
        t = clean_tree(self)
        t.add("runner/base/big.c", "int x;\n" * 950)
        rc, out = t.run()
        self.assertEqual(rc, 0, out)
        self.assertIn("notice: runner/base/big.c: 952 lines", out)
        t.add("runner/base/big.c", "int x;\n" * 998)  # 1,000 lines: still allowed
        rc, out = t.run()
        self.assertEqual(rc, 0, out)
        t.add("runner/base/big.c", "int x;\n" * 999)
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/base/big.c", "size")
        self.assertIn("1001 lines, over the limit of 1000", out)
        # A file another branch is splitting is listed, with its reason.
        t.allow("size runner/base/big.c -- being split on another branch\n")
        rc, out = t.run()
        self.assertEqual(rc, 0, out)
        self.assertIn("allowlisted: size 1", out)

    def test_opening_paragraph(self):
        t = clean_tree(self)
        t.add("runner/base/a.c", "#include <stdio.h>\n/* a.c: too late for an opening. */\n",
              raw=True)
        t.add("runner/base/b.c", "/* b.c: short */\nint b;\n", raw=True)
        t.add("runner/base/c.c", "/* actions.c: the name of the file this used to be, which a\n"
              " * move left behind. */\nint c;\n", raw=True)
        t.add("runner/base/d.c", "// d.c: a paragraph in line comments is a paragraph too,\n"
              "// as long as it says what the file is for.\nint d;\n", raw=True)
        t.add("runner/base/e.c", "\n\n/* The helpers of the fake tree, described without\n"
              " * starting with a file name: also fine. */\n", raw=True)
        t.add("runner/base/f.h", "#ifndef F_H\n/* f.h: a paragraph after the include guard\n"
              " * comes after the first preprocessor line. */\n#define F_H\n#endif\n", raw=True)
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertViolation(out, "runner/base/a.c:1", "opening")
        self.assertViolation(out, "runner/base/b.c:1", "opening")
        self.assertViolation(out, "runner/base/c.c:1", "opening")
        self.assertViolation(out, "runner/base/f.h:1", "opening")
        self.assertIn("another file's name (actions.c)", out)
        self.assertNotIn("runner/base/d.c", out)
        self.assertNotIn("runner/base/e.c", out)

    def test_allowlist_only_shrinks(self):
        t = clean_tree(self)
        t.add("runner/base/pool.h", '#include "model/workflow.h"\n')
        t.allow("# a comment\n\nlayer runner/base/pool.h model/workflow.h -- pool defs\n")
        rc, out = t.run()
        self.assertEqual(rc, 0, out)
        self.assertIn("allowlisted: layer 1", out)
        rc, out = t.run("--verbose")
        self.assertIn("allowlisted: runner/base/pool.h:3: layer", out)
        # The violation is gone: its line must go too.
        t.add("runner/base/pool.h", "struct pc_pool;\n")
        rc, out = t.run()
        self.assertEqual(rc, 1, out)
        self.assertIn("tests/layers_allow.txt:3: stale: `layer runner/base/pool.h "
                      "model/workflow.h` no longer occurs", out)

    def test_allowlist_lines_need_a_reason(self):
        t = clean_tree(self)
        t.allow("layer runner/base/pool.h model/workflow.h\n")
        rc, out = t.run()
        self.assertEqual(rc, 2, out)
        self.assertIn("layers_allow.txt:1: no reason", out)
        t.allow("layer runner/base/pool.h model/workflow.h -- TODO: why\n")
        self.assertEqual(t.run()[0], 2)
        t.allow("lyer runner/base/pool.h model/workflow.h -- typo\n")
        rc, out = t.run()
        self.assertEqual(rc, 2, out)
        self.assertIn("unknown rule", out)
        t.allow("size runner/a.c -- x\nsize  runner/a.c -- y\n")
        rc, out = t.run()
        self.assertEqual(rc, 2, out)
        self.assertIn("duplicate of line 1", out)

    def test_the_real_table_covers_the_planned_folders(self):
        # Every folder of REDESIGN.md has a layer, in the right order.
        expect = {
            "runner/main.c": 7, "runner/cli/builtins.c": 7, "runner/load/load.c": 6,
            "runner/core/run.c": 5, "runner/core/watchdog.h": 5, "runner/report/junit.c": 5,
            "runner/core/task.c": 4, "runner/core/defer.h": 4, "runner/actions/basic.c": 3,
            "runner/http/action.c": 3, "runner/script/plugin.c": 3,
            "runner/script/plugin_check.c": 3, "runner/script/plugin_int.h": 3,
            "runner/http/session.c": 2,
            "runner/proc/proc.c": 2, "runner/script/coro.h": 2, "runner/script/mod_time.c": 2,
            "runner/model/action.h": 1, "runner/base/queue.h": 0,
        }
        for rel, layer in expect.items():
            self.assertEqual(check_layers.layer_of(rel)[0], layer, rel)


if __name__ == "__main__":
    unittest.main()
