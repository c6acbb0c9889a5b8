#!/usr/bin/env python3
"""check_layers.py: the house rules of runner/, checked over the source text.

pacer's C code is stacked in layers (docs/architecture.md): the command line
on top, then loading, the run driver and reports, the engine, the actions,
the shared services they use, the workflow model and the utilities at the
bottom. This script reads every .c and .h file under runner/ (the unit
tests, tests/test_*.c, are exempt: a test may reach into any layer) and
fails when one of these rules is broken:

  layer          a file includes a header of a higher layer (LAYERS below);
  include-path   an #include "..." does not name a file under runner/ by
                 its folder ("base/util.h", never "util.h");
  unknown-layer  a file lies in no folder of LAYERS (add the folder there
                 and to docs/architecture.md);
  cycle          modules include each other in a circle (a module is a .c
                 file with its .h; a circle among them means neither can be
                 understood, tested or replaced without the other);
  names-action   the engine (runner/core/), the loader (runner/load/) or a
                 report format (runner/report/) names a particular action:
                 an identifier or string of ACTION_NAMES, or an include of an
                 action's header (ACTION_HEADERS). They reach actions only
                 through the action table (struct pc_action_ops);
  transport-lua  the HTTP transport (TRANSPORT) reaches lua.h, lauxlib.h,
                 lualib.h or a script/ header, directly or through the
                 headers it includes;
  size           a file is over HARD_LINES (1,000) lines (files over
                 SOFT_LINES are listed as a notice: split them when you
                 next work there);
  opening        a file does not open with a comment paragraph saying what
                 it is for (STYLE.md), before its first line of code or
                 preprocessor (#include, #ifndef), or the paragraph begins
                 with another file's name ("actions.c: ..." in basic.c,
                 left by a move).

While the redesign (issue 13) is under way, the violations that exist are
listed in tests/layers_allow.txt, one line each with its reason. The check
fails on a violation that is not listed, and on a listed line that no
longer occurs: the list can only shrink. When you remove a violation,
delete its line.

Usage: tests/check_layers.py [--root DIR] [--allow FILE] [--verbose]
       tests/check_layers.py --suggest   (prints allowlist lines for the
                                          violations not yet listed)
Exit status: 0 clean, 1 violations or stale allowlist lines, 2 bad usage or
a malformed allowlist. The self-tests are tests/check_layers_test.py.
"""

import argparse
import fnmatch
import os
import re
import sys

# ------------------------------------------------------------------ the table

# (path pattern under the source root, layer, what the layer is). The first
# pattern that matches a file wins, so the exceptions of a folder come
# before the folder. `*` matches across "/" (a subfolder inherits its
# folder's layer). The same table is drawn in docs/architecture.md.
LAYERS = [
    ("runner/main.c", 7, "command line"),
    ("runner/cli/*", 7, "command line"),
    ("runner/load/*", 6, "loading"),
    ("runner/core/run.[ch]", 5, "run driver"),
    ("runner/core/run_int.h", 5, "run driver"),
    ("runner/core/run_many.c", 5, "run driver"),
    ("runner/core/watchdog.[ch]", 5, "run driver"),
    ("runner/report/*", 5, "reports"),
    # run-end exporters (pings, Pushgateway, OpenTelemetry): called by the
    # run driver, they send through the HTTP transport (layer 2)
    ("runner/export/*", 5, "run exporters"),
    # durable runs: the journal (through the engine's pc_journal_ops) and
    # the run history, in SQLite; called by the run driver
    ("runner/journal/*", 5, "journal and history"),
    ("runner/core/*", 4, "engine"),
    ("runner/actions/*", 3, "actions"),
    ("runner/http/action.[ch]", 3, "actions"),
    # the uses and lua actions: plugin.c, plugin_find.c, plugin_check.c and
    # their internal header plugin_int.h
    ("runner/script/plugin*.[ch]", 3, "actions"),
    ("runner/http/*", 2, "shared services"),
    ("runner/proc/*", 2, "shared services"),
    ("runner/script/*", 2, "shared services"),
    ("runner/model/*", 1, "model and action interface"),
    ("runner/base/*", 0, "utilities"),
]

# Where no action may be named (rule names-action).
NO_ACTION_SCOPE = [
    "runner/core/*",    # the engine and the run driver: a task tree over ops
    "runner/load/*",    # the loader: dispatches keys and defaults to the ops that own them
    "runner/report/*",  # report formats: depend only on records and outcomes
]

# What "naming an action" means: (kind, text, why it is an action's).
# kind "prefix": any identifier that starts with text; "exact": the
# identifier text; "string": a string literal whose whole content is text,
# or text in escaped quotes inside a longer literal (JSON written in C).
ACTION_NAMES = [
    ("prefix", "pc_http_", "the http action and its session (runner/http/)"),
    ("prefix", "pc_exec_", "the exec action and its process set"),
    ("prefix", "pc_proc_", "the process runner behind exec and shell"),
    ("prefix", "pc_shell_", "the shell action"),
    ("prefix", "pc_uses", "the uses action (pc_uses_ops and its helpers)"),
    ("exact", "pc_lua_ops", "the lua action's ops struct"),
    ("prefix", "pc_plugin", "plugin discovery and checks belong to the uses action"),
    ("exact", "pc_workflow_has_lua", "asks whether the workflow uses a Lua action"),
    ("prefix", "PC_ACT_", "an action kind: a step holds its ops, not an enum naming it"),
    ("string", "http", "the http action's key"),
    ("string", "exec", "the exec action's key"),
    ("string", "shell", "the shell action's key"),
    ("string", "uses", "the uses action's key"),
    ("string", "lua", "the lua action's key"),
    ("string", "sleep", "the sleep action's key"),
    ("string", "log", "the log action's key"),
    ("string", "assert", "the assert action's key"),
]
# (The step kinds, PC_STEP_LEAF, PC_STEP_SEQUENCE and PC_STEP_GATHER, are
# not actions; the PC_ACT_ prefix does not match them.)

# Headers that belong to actions (rule names-action: an include of one from
# NO_ACTION_SCOPE names the action as surely as a call does).
ACTION_HEADERS = [
    "runner/actions/*",        # the built-in actions
    "runner/http/*",           # the http action and its transport
    "runner/proc/*",           # the process runner of exec and shell
    "runner/script/plugin*.h",  # the uses and lua actions, plugin discovery
]

# The HTTP transport, which is plain C (rule transport-lua). Patterns that
# match no file yet are fine: they take effect when the file appears.
TRANSPORT = [
    "runner/http/session.[ch]",   # the curl multi session on the loop
    "runner/http/request.[ch]",   # one request from a plain C spec
    "runner/http/request_int.h",  # what request.c and response.c share
    "runner/http/response.c",     # the receiving half of a request
    "runner/http/rules.[ch]",     # redirects, retries, limits
    "runner/http/failure.[ch]",   # failure text from curl and errno
    "runner/http/curlshim.[ch]",  # the dlopen shim for libcurl
    "runner/http/upload.[ch]",    # bodies from files and multipart (issue 15)
    "runner/http/stats.[ch]",     # the session's counters by origin
]
LUA_HEADERS = {"lua.h", "lauxlib.h", "lualib.h", "luaconf.h", "lua.hpp"}

# A file over HARD_LINES lines is a violation (STYLE.md: a file per job, no
# file much over a thousand lines); one over SOFT_LINES is listed as a
# notice, so a file nearing the limit is split before it reaches it. A file
# another branch is splitting right now is listed in the allowlist
# (`size runner/...`), and its line goes when the split is merged.
SOFT_LINES = 900
HARD_LINES = 1000

ALLOW_DEFAULT = os.path.join("tests", "layers_allow.txt")

WHAT_TO_DO = {
    "layer": "a lower layer never includes a higher one: move the code that needs it "
             "up, or reach it through a lower interface (model/action.h, a run hook)",
    "include-path": 'name the folder, as in #include "base/util.h"',
    "unknown-layer": "add the folder to LAYERS in tests/check_layers.py and to "
                     "docs/architecture.md",
    "cycle": "break the circle: the lower module must not need the higher one "
             "(pass a callback, or move the shared part down)",
    "names-action": "reach actions only through the action table (struct pc_action_ops, "
                    "run hooks); move the action's part into the action",
    "transport-lua": "the transport is plain C (struct pc_http_spec); only http/spec.c and "
                     "http/result.c touch Lua",
    "size": "split the file by job (STYLE.md: no file much over a thousand lines)",
    "opening": "open the file with a paragraph, starting with its own name, saying what "
               "it is for (STYLE.md, Comments)",
}


def layer_of(rel):
    for pattern, layer, what in LAYERS:
        if fnmatch.fnmatchcase(rel, pattern):
            return layer, what
    return None, None


def matches_any(rel, patterns):
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def module_of(rel):
    return os.path.splitext(rel)[0]


# ------------------------------------------------------------------ scanning


def strip_comments(text):
    """Returns (code, first_comment): the text with every comment replaced by
    spaces (newlines kept, so line numbers stay), string and character
    literals untouched; and the text of the comment the file opens with
    (None if the file does not open with one)."""
    out = []
    i, n = 0, len(text)
    first_comment = None
    seen_code = False
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            body = text[i:end]
            if not seen_code and first_comment is None:
                first_comment = body[2:-2] if body.endswith("*/") else body[2:]
            out.append("".join(ch if ch == "\n" else " " for ch in body))
            i = end
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            end = text.find("\n", i)
            end = n if end < 0 else end
            if not seen_code and first_comment is None:
                # Consecutive // lines make one paragraph.
                lines = []
                j = i
                while True:
                    k = text.find("\n", j)
                    k = n if k < 0 else k
                    line = text[j:k].strip()
                    if not line.startswith("//"):
                        break
                    lines.append(line[2:])
                    j = k + 1
                    if j >= n:
                        break
                first_comment = "\n".join(lines)
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(text[i:j])
            seen_code = True
            i = j
        else:
            if not c.isspace():
                seen_code = True
            out.append(c)
            i += 1
    return "".join(out), first_comment


INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]+)[>"]', re.M)
TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[A-Za-z_][A-Za-z_0-9]*')


class Source:
    """One file under runner/: its includes, identifiers and strings."""

    def __init__(self, root, rel):
        self.rel = rel
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        code, self.opening = strip_comments(text)
        self.includes = []  # (line, "<" or '"', name)
        include_spans = []
        for m in INCLUDE_RE.finditer(code):
            line = code.count("\n", 0, m.start()) + 1
            self.includes.append((line, m.group(1), m.group(2).strip()))
            include_spans.append((m.start(), m.end()))
        self.tokens = []  # (line, token): identifiers and string literals
        line, pos = 1, 0
        spans = iter(include_spans)
        span = next(spans, None)
        for m in TOKEN_RE.finditer(code):
            while span and m.start() >= span[1]:
                span = next(spans, None)
            if span and span[0] <= m.start() < span[1]:
                continue  # the file name of an #include is not a string
            line += code.count("\n", pos, m.start())
            pos = m.start()
            self.tokens.append((line, m.group(0)))


def scan_tree(root):
    sources = {}
    base = os.path.join(root, "runner")
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".c", ".h")):
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                sources[rel] = Source(root, rel)
    return sources


# ------------------------------------------------------------------ the rules


class Violation:
    def __init__(self, rule, key, where, message):
        self.rule = rule
        self.key = key          # the allowlist key: "RULE SUBJECT [DETAIL]"
        self.where = where      # "file:line" or "file"
        self.message = message

    def text(self):
        return "%s: %s: %s.\n    To do: %s." % (self.where, self.rule, self.message,
                                                WHAT_TO_DO[self.rule])


def resolve(sources, name):
    """The file an #include "name" means: runner/name, if it exists."""
    rel = "runner/" + name
    return rel if rel in sources else None


def check_includes(sources, found):
    graph = {}  # module -> {module: (file, line, header)}
    for rel, src in sources.items():
        layer, what = layer_of(rel)
        if layer is None:
            found.append(Violation("unknown-layer", "unknown-layer %s" % rel, rel,
                                   "%s lies in no folder of the layer table" % rel))
        for line, kind, name in src.includes:
            if kind != '"':
                continue
            target = resolve(sources, name)
            if target is None:
                found.append(Violation(
                    "include-path", "include-path %s %s" % (rel, name), "%s:%d" % (rel, line),
                    '#include "%s" names no file under runner/' % name))
                continue
            tlayer, twhat = layer_of(target)
            if layer is not None and tlayer is not None and tlayer > layer:
                found.append(Violation(
                    "layer", "layer %s %s" % (rel, name), "%s:%d" % (rel, line),
                    'includes "%s" (layer %d, %s) from layer %d (%s)'
                    % (name, tlayer, twhat, layer, what)))
            a, b = module_of(rel), module_of(target)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, (rel, line, name))
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; returns the components of more than
    one module, each sorted, in a stable order."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    nodes = sorted(set(graph) | {b for edges in graph.values() for b in edges})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return sorted(comps)


def shortest_cycle(graph, comp):
    """One shortest circle through comp[0], as a list of edges."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        nxt = []
        for node in queue:
            for child in sorted(graph.get(node, {})):
                if child not in members:
                    continue
                if child == start:
                    path = [(node, child)]
                    while prev[node] is not None:
                        path.append((prev[node], node))
                        node = prev[node]
                    return list(reversed(path))
                if child not in prev:
                    prev[child] = node
                    nxt.append(child)
        queue = nxt
    return []


def check_cycles(graph, found):
    for comp in strongly_connected(graph):
        edges = shortest_cycle(graph, comp)
        steps = ", ".join('%s:%d includes "%s"' % graph[a][b] for a, b in edges)
        found.append(Violation(
            "cycle", "cycle " + " ".join(comp), comp[0],
            "%d modules include each other in a circle (%s); one such circle: %s"
            % (len(comp), " ".join(comp), steps)))


def check_action_names(sources, found):
    for rel, src in sources.items():
        if not matches_any(rel, NO_ACTION_SCOPE):
            continue
        hits = {}  # detail -> (first line, why)
        for line, kind, name in src.includes:
            target = resolve(sources, name) if kind == '"' else None
            if target and matches_any(target, ACTION_HEADERS):
                hits.setdefault("include:" + name, (line, "an action's header"))
        for line, tok in src.tokens:
            for kind, text, why in ACTION_NAMES:
                detail = None
                if kind == "prefix" and tok.startswith(text):
                    detail = tok
                elif kind == "exact" and tok == text:
                    detail = tok
                elif kind == "string" and tok.startswith('"'):
                    if tok == '"%s"' % text:
                        detail = tok
                    elif '\\"%s\\"' % text in tok:
                        detail = '\\"%s\\"' % text
                if detail:
                    hits.setdefault(detail, (line, why))
        for detail, (line, why) in sorted(hits.items(), key=lambda kv: (kv[1][0], kv[0])):
            found.append(Violation(
                "names-action", "names-action %s %s" % (rel, detail), "%s:%d" % (rel, line),
                "names an action: %s (%s)" % (detail, why)))


def check_transport(sources, found):
    def lua_path(rel, seen):
        """A chain of includes from rel to Lua, or None."""
        if rel in seen:
            return None
        seen.add(rel)
        for line, kind, name in sources[rel].includes:
            if name in LUA_HEADERS:
                return [(rel, line, name)]
            target = resolve(sources, name) if kind == '"' else None
            if target is None:
                continue
            if target.startswith("runner/script/"):
                return [(rel, line, name)]
            rest = lua_path(target, seen)
            if rest:
                return [(rel, line, name)] + rest
        return None

    for rel in sources:
        if not matches_any(rel, TRANSPORT):
            continue
        for line, kind, name in sources[rel].includes:
            chain = None
            if name in LUA_HEADERS:
                chain = [(rel, line, name)]
            elif kind == '"':
                target = resolve(sources, name)
                if target and target.startswith("runner/script/"):
                    chain = [(rel, line, name)]
                elif target:
                    rest = lua_path(target, set())
                    chain = [(rel, line, name)] + rest if rest else None
            if chain:
                via = " -> ".join("%s:%d includes %s" % step for step in chain)
                found.append(Violation(
                    "transport-lua", "transport-lua %s %s" % (rel, name), "%s:%d" % (rel, line),
                    "the transport reaches Lua: %s" % via))


def check_files(sources, found, notices):
    for rel, src in sources.items():
        if src.lines > HARD_LINES:
            found.append(Violation("size", "size %s" % rel, rel,
                                   "%d lines, over the limit of %d" % (src.lines, HARD_LINES)))
        elif src.lines > SOFT_LINES:
            notices.append("%s: %d lines, over %d (a soft limit: split it when you next work "
                           "there)" % (rel, src.lines, SOFT_LINES))
        words = " ".join((src.opening or "").replace("*", " ").split())
        if len(words) < 40:
            found.append(Violation(
                "opening", "opening %s" % rel, "%s:1" % rel,
                "the file does not open with a comment paragraph" if src.opening is None else
                "the opening comment is too short to be a paragraph (%d characters)"
                % len(words)))
            continue
        m = re.match(r"([A-Za-z0-9_]+\.[ch])\b", words)
        name = os.path.basename(rel)
        if m and m.group(1) != name:
            found.append(Violation(
                "opening", "opening %s" % rel, "%s:1" % rel,
                "the opening paragraph begins with another file's name (%s)" % m.group(1)))


def check(root):
    """Returns (violations, notices, number of files) for the tree at root."""
    sources = scan_tree(root)
    found, notices = [], []
    graph = check_includes(sources, found)
    check_cycles(graph, found)
    check_action_names(sources, found)
    check_transport(sources, found)
    check_files(sources, found, notices)
    return found, notices, len(sources)


# ------------------------------------------------------------------ allowlist


class AllowlistError(Exception):
    pass


def read_allowlist(path):
    """Returns {key: (line number, reason)}. A line is `KEY -- REASON`, where
    KEY is what a violation prints as its allowlist key; # starts a comment
    line."""
    allowed = {}
    if not os.path.exists(path):
        return allowed
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, reason = line.partition(" -- ")
            key = " ".join(key.split())
            if not sep or not reason.strip() or reason.strip().startswith("TODO"):
                raise AllowlistError("%s:%d: no reason: write `%s -- WHY IT IS STILL THERE`"
                                     % (path, number, key))
            if key.split()[0] not in WHAT_TO_DO:
                raise AllowlistError("%s:%d: unknown rule %r" % (path, number, key.split()[0]))
            if key in allowed:
                raise AllowlistError("%s:%d: duplicate of line %d" % (path, number, allowed[key][0]))
            allowed[key] = (number, reason.strip())
    return allowed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                    help="the source tree (default: this checkout)")
    ap.add_argument("--allow", help="the allowlist (default: ROOT/%s)" % ALLOW_DEFAULT)
    ap.add_argument("--suggest", action="store_true",
                    help="print allowlist lines for the violations not listed yet")
    ap.add_argument("--verbose", action="store_true", help="also list the allowlisted violations")
    args = ap.parse_args(argv)
    root = os.path.normpath(args.root)
    allow_path = args.allow or os.path.join(root, ALLOW_DEFAULT)
    if not os.path.isdir(os.path.join(root, "runner")):
        print("check_layers: %s has no runner/ folder" % root, file=sys.stderr)
        return 2
    try:
        allowed = read_allowlist(allow_path)
    except AllowlistError as e:
        print("check_layers: %s" % e, file=sys.stderr)
        return 2

    found, notices, nfiles = check(root)
    new = [v for v in found if v.key not in allowed]
    occurring = {v.key for v in found}
    stale = sorted((n, k) for k, (n, _) in allowed.items() if k not in occurring)
    listed = [v for v in found if v.key in allowed]

    if args.suggest:
        for v in new:
            print("%s -- TODO: why it is still there (%s)" % (v.key, v.where))
        return 0

    for note in notices:
        print("check_layers: notice: %s" % note)
    if args.verbose:
        for v in listed:
            print("check_layers: allowlisted: %s" % v.text())
    for v in new:
        print(v.text())
    for number, key in stale:
        print("%s:%d: stale: `%s` no longer occurs: delete the line (the allowlist only "
              "shrinks)" % (os.path.relpath(allow_path, root), number, key))
    per_rule = {}
    for v in listed:
        per_rule[v.rule] = per_rule.get(v.rule, 0) + 1
    counts = ", ".join("%s %d" % kv for kv in sorted(per_rule.items())) or "none"
    print("check_layers: %d files; %d new violations, %d stale allowlist lines; "
          "allowlisted: %s" % (nfiles, len(new), len(stale), counts))
    return 1 if new or stale else 0


if __name__ == "__main__":
    sys.exit(main())
