#!/usr/bin/env python3
"""journal_crash.py: crash tests of --journal/--resume (issue 18), run by
tests/cases/journal_crash.yml (or by hand: journal_crash.py PACER [SEED]).

A fan-out of 1,000 HTTP items against a local server that counts each
item's requests; a later step reads every item's result (steps.fan.items)
and an item's output, so restored results must be the real ones. pacer is
SIGKILLed at random points of the fan-out (some while it commits), the
journal is checked whole after each kill (SQLite's integrity_check), and
the run is resumed with --resume until it finishes. Then:

- every item reached the server at least once, and the repeats are at most
  the items in flight at each kill (the concurrency, per kill): a leaf is
  journaled in the loop iteration it finishes in, so nothing that had
  finished before the kill's iteration runs again;
- the final report has the same steps with the same outcomes, attempts,
  HTTP statuses and methods as a run of the same workflow that was never
  interrupted (each against a fresh server).

Prints "crash: ok (...)" and exits 0, or says what differs and exits 1.
"""
import http.server
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

N = 1000
CONC = 16


class Counter(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.counts = {}

    def handle_error(self, request, client_address):
        pass  # a client killed mid-request: expected here


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        k = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            self.server.counts[k] = self.server.counts.get(k, 0) + 1
        time.sleep(random.uniform(0.001, 0.004))
        body = json.dumps({"k": k, "double": int(k) * 2}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


WORKFLOW = """name: crash
steps:
  - id: fan
    for_each: ${{{{ vars.items }}}}
    concurrency: {conc}
    http:
      url: "{url}/item/${{{{ item }}}}"
      headers:
        Idempotency-Key: "item-${{{{ item }}}}"
    outputs:
      double: ${{{{ result.json.double }}}}
  - id: check
    assert: '${{{{ #steps.fan.items == {n} and steps.fan.items[{n}].outputs.double == {n2} and steps.fan.items[7].json.k == "7" }}}}'
vars:
  items: [{items}]
"""


def start_server():
    srv = Counter()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def write_workflow(d, srv):
    path = os.path.join(d, "crash.yml")
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    with open(path, "w") as f:
        f.write(WORKFLOW.format(conc=CONC, url=url, n=N, n2=2 * N,
                                items=", ".join(str(i) for i in range(1, N + 1))))
    return path


def outcomes(report):
    with open(report) as f:
        r = json.load(f)
    # the URL's port is the server's, which differs between the two runs
    return r["run"]["outcome"], sorted(
        (s["path"], s.get("label"), s["outcome"], s.get("attempts"),
         (s.get("http") or {}).get("status"), (s.get("http") or {}).get("method"))
        for s in r["steps"])


def main():
    pacer = sys.argv[1]
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    factor = float(os.environ.get("PACER_TIME_FACTOR", "1"))
    d = tempfile.mkdtemp(prefix="pacer-crash-")
    env = dict(os.environ, NO_COLOR="1")
    base = [pacer, "run", "-q", "--no-history"]

    # The uninterrupted run.
    srv = start_server()
    wf = write_workflow(d, srv)
    ref = os.path.join(d, "ref.json")
    rc = subprocess.run(base + [wf, "--report", "json:" + ref], env=env).returncode
    if rc != 0 or sorted(srv.counts.values()) != [1] * N:
        print("crash: the uninterrupted run failed (exit %d, %d items)" % (rc, len(srv.counts)))
        return 1
    t_full = 0
    srv.shutdown()

    # The crashed and resumed run, against a fresh server.
    srv = start_server()
    wf = write_workflow(d, srv)
    journal = os.path.join(d, "j.db")
    final = os.path.join(d, "final.json")
    kills = 0
    for round_ in range(40):
        args = base + [wf, "--journal", journal, "--report", "json:" + final]
        if round_ > 0:
            args.append("--resume")
        t0 = time.monotonic()
        p = subprocess.Popen(args, env=env)
        # Kill at a random point: somewhere in the first second (scaled),
        # while the fan-out runs, for the first rounds; later rounds run to
        # the end.
        if kills < 5:
            try:
                p.wait(timeout=rng.uniform(0.05, 0.6) * factor)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                db = sqlite3.connect(journal)
                ok = db.execute("PRAGMA integrity_check").fetchone()[0]
                db.close()
                if ok != "ok":
                    print("crash: the journal is damaged after a kill: %s" % ok)
                    return 1
                continue
        else:
            p.wait()
        t_full = time.monotonic() - t0
        if p.returncode != 0:
            print("crash: the resumed run exited %d" % p.returncode)
            return 1
        break
    else:
        print("crash: the run never finished")
        return 1
    srv.shutdown()
    counts = srv.counts
    missing = [i for i in range(1, N + 1) if str(i) not in counts]
    extra = sum(counts.values()) - len(counts)
    if missing:
        print("crash: items never sent: %s" % missing[:10])
        return 1
    if extra > kills * CONC:
        print("crash: %d repeats after %d kills (at most %d in flight)" % (extra, kills,
                                                                          kills * CONC))
        return 1
    if outcomes(final) != outcomes(ref):
        a, b = outcomes(final), outcomes(ref)
        diff = [x for x in a[1] if x not in b[1]][:5]
        print("crash: the final report differs from an uninterrupted run's: %s %s" % (a[0], diff))
        return 1
    print("crash: ok (%d kills, %d repeats, last round %.1fs)" % (kills, extra, t_full))
    return 0


if __name__ == "__main__":
    sys.exit(main())
