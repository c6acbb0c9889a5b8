#!/usr/bin/env python3
"""The redirect-method matrix, against a third-party server (httpbin), for
pacer and for curl.

For every method (GET, HEAD, POST, PUT and PATCH with a text body, DELETE)
and every redirect status (301, 302, 303, 307, 308), a request goes to
httpbin's /redirect-to?url=/anything&status_code=N, and /anything echoes
what it received: method, body, Content-Type. The rules pacer follows
(docs/http.md, "Redirects"):

    303        any method but HEAD becomes GET, without its body
    301, 302   POST becomes GET, without its body; other methods keep both
    307, 308   every method keeps its method and its body
    a request that loses its body loses its Content-Type too

Checked three ways: the `http` action (a generated workflow), the Lua API
(pacer.http.request in a `lua` step of the same workflow), and curl -L with
the flags that say the same thing. curl is the reference where the RFC
leaves room; where the rules above differ from curl on purpose, the cell is
listed in CURL_DIFFERS and the difference itself is checked, so a curl
that changes is noticed too.

    check_redirects.py --pacer build/pacer --httpbin http://127.0.0.1:PORT

Prints one line per problem and exits 1 if there was any.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
WITH_BODY = {"POST", "PUT", "PATCH"}
STATUSES = [301, 302, 303, 307, 308]
BODY = "hello from pacer"
CTYPE = "text/plain; charset=utf-8"

# Where pacer differs from curl -L on purpose (issue 12): with -X, curl keeps
# the custom method on every redirect, also on 303 (RFC 9110 15.4.4 says to
# retrieve the new URL with GET), and on 301/302 it sends PATCH without the
# body; pacer makes a 303 a GET and keeps PATCH's body on 301/302.
CURL_DIFFERS = {
    ("PATCH", 301): ("PATCH", ""),
    ("PATCH", 302): ("PATCH", ""),
    ("PATCH", 303): ("PATCH", ""),
    ("DELETE", 303): ("DELETE", ""),
}


def expected(method, status):
    """(method, body) the final request must have."""
    if status == 303 and method != "HEAD":
        return "GET", ""
    if status in (301, 302) and method == "POST":
        return "GET", ""
    return method, BODY if method in WITH_BODY else ""


def target(base, status):
    return "%s/redirect-to?url=/anything&status_code=%d" % (base, status)


def workflow(base):
    """A workflow that makes every request of the matrix twice (action and
    Lua) and logs one JSON line per request: what /anything received."""
    lines = ["name: redirect-matrix", "steps:"]
    for m in METHODS:
        for st in STATUSES:
            sid = "%s_%d" % (m.lower(), st)
            lines += ["  - id: %s" % sid, "    http:", "      method: %s" % m,
                      "      url: %s" % json.dumps(target(base, st))]
            if m in WITH_BODY:
                lines.append("      body: %s" % json.dumps(BODY))
            lines += ["  - log: >-",
                      "      ${{ json({via = 'action', method = '%s', status = %d, "
                      "final = steps.%s.status, url = steps.%s.url, "
                      "echo = (steps.%s.body ~= '' and steps.%s.json or {})}) }}"
                      % (m, st, sid, sid, sid, sid)]
    cases = ", ".join("{'%s', %d}" % (m, st) for m in METHODS for st in STATUSES)
    lines += ["  - lua: |",
              "      for _, c in ipairs({%s}) do" % cases,
              "        local opts = {method = c[1], url = '%s/redirect-to?url=/anything&status_code=' .. c[2]}"
              % base,
              "        if c[1] == 'POST' or c[1] == 'PUT' or c[1] == 'PATCH' then opts.body = %s end"
              % json.dumps(BODY),
              "        local r = pacer.http.request(opts)",
              "        print(pacer.json.encode({via = 'lua', method = c[1], status = c[2], final = r.status,",
              "          url = r.url, echo = (r.body ~= '' and r.json or {})}))",
              "      end"]
    return "\n".join(lines) + "\n"


def seen(echo):
    """(method, body, content-type or None) from httpbin's echo."""
    body = echo.get("data") or ""
    if not body and echo.get("form"):
        body = "&".join("%s=%s" % (k, v) for k, v in echo["form"].items())
    headers = {k.lower(): v for k, v in (echo.get("headers") or {}).items()}
    return echo.get("method"), body, headers.get("content-type")


def curl_args(method, bodyfile):
    """curl -L flags that make `method` with the body, as a user would."""
    if method == "GET":
        return []
    if method == "HEAD":
        return ["-I"]
    if method == "POST":
        return ["--data-binary", "@" + bodyfile, "-H", "Content-Type: " + CTYPE]
    if method == "PUT":
        return ["-T", bodyfile, "-H", "Content-Type: " + CTYPE]
    if method == "PATCH":
        return ["-X", "PATCH", "--data-binary", "@" + bodyfile, "-H", "Content-Type: " + CTYPE]
    return ["-X", method]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", required=True)
    ap.add_argument("--httpbin", required=True)
    o = ap.parse_args()
    problems = []
    tmp = tempfile.mkdtemp(prefix="pacer-redirects-")
    wf = os.path.join(tmp, "matrix.yml")
    with open(wf, "w") as f:
        f.write(workflow(o.httpbin))
    bodyfile = os.path.join(tmp, "body.txt")
    with open(bodyfile, "w") as f:
        f.write(BODY)

    p = subprocess.run([o.pacer, "run", wf, "-q"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        print("pacer exited %d: %s" % (p.returncode, p.stderr[-2000:]))
        return 1
    results = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    if len(results) != 2 * len(METHODS) * len(STATUSES):
        problems.append("pacer printed %d results, expected %d"
                        % (len(results), 2 * len(METHODS) * len(STATUSES)))
    for r in results:
        m, st = r["method"], r["status"]
        want_m, want_body = expected(m, st)
        where = "pacer (%s) %s on %d" % (r["via"], m, st)
        if r["final"] != 200 or not r["url"].endswith("/anything"):
            problems.append("%s: ended at %s %s, expected 200 from /anything"
                            % (where, r["final"], r["url"]))
            continue
        if m == "HEAD":
            continue  # no body: the echo cannot be seen
        got_m, got_body, got_ct = seen(r["echo"])
        if (got_m, got_body) != (want_m, want_body):
            problems.append("%s: sent %s with body %r, expected %s with body %r"
                            % (where, got_m, got_body, want_m, want_body))
        want_ct = CTYPE if want_body else None
        if got_ct != want_ct:
            problems.append("%s: Content-Type %r, expected %r" % (where, got_ct, want_ct))

    # curl, the reference
    for m in METHODS:
        for st in STATUSES:
            cmd = (["curl", "-sS", "-L", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"]
                   + curl_args(m, bodyfile) + [target(o.httpbin, st)])
            c = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            out = c.stdout.rsplit("\n", 1)
            code = out[-1].strip()
            where = "curl %s on %d" % (m, st)
            if c.returncode != 0 or code != "200":
                problems.append("%s: exit %d, status %s: %s" % (where, c.returncode, code,
                                                                  c.stderr.strip()))
                continue
            if m == "HEAD":
                continue
            got_m, got_body, _ = seen(json.loads(out[0]))
            want = CURL_DIFFERS.get((m, st), expected(m, st))
            if (got_m, got_body) != want:
                problems.append("%s: sent %s with body %r; expected %s with body %r%s"
                                % (where, got_m, got_body, want[0], want[1],
                                   " (a known difference from pacer's rules: update "
                                   "CURL_DIFFERS and docs/http.md)"
                                   if (m, st) in CURL_DIFFERS else ""))
    for pr in problems:
        print(pr)
    print("%d pacer results and %d curl requests checked, %d problems"
          % (len(results), len(METHODS) * len(STATUSES), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
