#!/usr/bin/env python3
"""telemetry_receiver.py: a local stand-in for what pacer's run exporters
talk to (runner/export/: healthchecks.io pings, a Pushgateway, an
OpenTelemetry collector), and the checks of what they sent. Loopback only,
standard library only. The cases tests/cases/export_*.yml use it.

    telemetry_receiver.py serve DUMP [--hang] [--status N]
        Serves HTTP/1.1 on 127.0.0.1 (an ephemeral port), prints its URL on
        the first line of stdout, and appends every request it gets to DUMP
        as one JSON line {method, path, query, headers, body}. It answers
        200 ("{}" to /v1/traces, "OK" to the rest), except:
          /status/N/...  answers N with the request's headers echoed back in
                         the body (to show a secret would leak if pacer
                         logged a receiver's answer unredacted);
          /flaky/KEY     answers 503 the first time KEY is asked, then 200;
          --status N     every request answers N (headers echoed);
          --hang         reads each request and never answers.
        Runs until killed.

    telemetry_receiver.py otlp DUMP [--parent TRACEPARENT] [--attrs K,K...] [--child FILE]
        Checks every request to .../v1/traces against the OTLP/HTTP JSON
        encoding (the protobuf JSON mapping of ExportTraceServiceRequest:
        resourceSpans/scopeSpans/spans, lowerCamelCase field names, trace
        and span ids as lower-case hex, 64-bit integers such as
        startTimeUnixNano and intValue as decimal strings, enums as numbers,
        status codes 0-2), that every span shares one trace, that each
        parentSpanId names a span of the request (or, with --parent, the
        span TRACEPARENT named, for the root), and that children lie within
        their parents in time. Prints "otlp: ok" (or each problem, exit 1),
        the resource's service.name, then the span tree, one line a span:
        indentation, name, kind, status and the attributes named by --attrs.
        Siblings are sorted by name and item, so the tree is the same from
        run to run. Then every traceparent header pacer sent to this
        receiver, and the TRACEPARENT in FILE (what a program was given),
        must name a span of the trace: each prints the span it names.

    telemetry_receiver.py requests DUMP
        Prints "METHOD PATH?QUERY" for every request, with each rid= value
        replaced by rid=<N> (N numbers the distinct rids in order), after
        checking that every rid is a UUID.
"""
import http.server
import json
import re
import sys
import threading
import time
import urllib.parse

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DIGITS = re.compile(r"^-?[0-9]+$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "unset", 1: "ok", 2: "error"}

# The fields of the OTLP messages a span request may hold (opentelemetry-proto,
# trace/v1/trace.proto and common/v1/common.proto), by their JSON names.
REQUEST_FIELDS = {"resourceSpans"}
RESOURCE_SPANS_FIELDS = {"resource", "scopeSpans", "schemaUrl"}
RESOURCE_FIELDS = {"attributes", "droppedAttributesCount", "entityRefs"}
SCOPE_SPANS_FIELDS = {"scope", "spans", "schemaUrl"}
SCOPE_FIELDS = {"name", "version", "attributes", "droppedAttributesCount"}
SPAN_FIELDS = {"traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind",
               "startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
               "events", "droppedEventsCount", "links", "droppedLinksCount", "status"}
STATUS_FIELDS = {"message", "code"}
VALUE_FIELDS = {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
                "kvlistValue", "bytesValue"}


# ------------------------------------------------------------------ serve

def serve(dump, hang, status):
    lock = threading.Lock()
    flaky = set()
    out = open(dump, "a", encoding="utf-8")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            u = urllib.parse.urlsplit(self.path)
            rec = {"method": self.command, "path": u.path, "query": u.query,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode("utf-8", "replace"), "time": time.time()}
            with lock:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if hang:
                while True:
                    time.sleep(3600)
            code, text, ctype = 200, "OK", "text/plain"
            m = re.match(r"^.*/status/([0-9]{3})(/|$)", u.path)
            if status or m:
                code = status or int(m.group(1))
                text = json.dumps(rec["headers"])
            elif u.path.endswith("/v1/traces"):
                text, ctype = "{}", "application/json"
            elif "/flaky/" in u.path:
                with lock:
                    first = u.path not in flaky
                    flaky.add(u.path)
                if first:
                    code, text = 503, "flaky"
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    print("http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    srv.serve_forever()


def load(dump):
    with open(dump, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------- otlp

class Problems(list):
    def need(self, cond, what):
        if not cond:
            self.append(what)
        return cond


def check_fields(p, obj, allowed, where):
    if not p.need(isinstance(obj, dict), "%s: not an object" % where):
        return False
    extra = set(obj) - allowed
    p.need(not extra, "%s: fields not in the proto: %s" % (where, sorted(extra)))
    return True


def check_value(p, v, where):
    if not check_fields(p, v, VALUE_FIELDS, where):
        return None
    p.need(len(v) == 1, "%s: exactly one of the value fields, got %s" % (where, sorted(v)))
    if "stringValue" in v:
        p.need(isinstance(v["stringValue"], str), "%s: stringValue not a string" % where)
        return v["stringValue"]
    if "intValue" in v:
        # int64 in the protobuf JSON mapping: a decimal string.
        p.need(isinstance(v["intValue"], str) and DIGITS.match(v["intValue"]),
               "%s: intValue must be a decimal string, got %r" % (where, v["intValue"]))
        return int(v["intValue"]) if isinstance(v["intValue"], str) else None
    if "boolValue" in v:
        p.need(isinstance(v["boolValue"], bool), "%s: boolValue not a boolean" % where)
        return v["boolValue"]
    if "doubleValue" in v:
        p.need(isinstance(v["doubleValue"], (int, float)) and
               not isinstance(v["doubleValue"], bool), "%s: doubleValue not a number" % where)
        return v["doubleValue"]
    return None


def check_attrs(p, attrs, where):
    out = {}
    if not p.need(isinstance(attrs, list), "%s: attributes not a list" % where):
        return out
    for i, a in enumerate(attrs):
        w = "%s.attributes[%d]" % (where, i)
        if not check_fields(p, a, {"key", "value"}, w):
            continue
        p.need(isinstance(a.get("key"), str) and a["key"], "%s: key" % w)
        p.need(a.get("key") not in out, "%s: attribute %r twice" % (w, a.get("key")))
        out[a.get("key")] = check_value(p, a.get("value"), w + ".value")
    return out


def check_span(p, s, where):
    if not check_fields(p, s, SPAN_FIELDS, where):
        return None
    for k in ("traceId", "spanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano"):
        p.need(k in s, "%s: no %s" % (where, k))
    p.need(HEX32.match(str(s.get("traceId"))) and s.get("traceId") != "0" * 32,
           "%s: traceId must be 32 lower-case hex digits, got %r" % (where, s.get("traceId")))
    p.need(HEX16.match(str(s.get("spanId"))) and s.get("spanId") != "0" * 16,
           "%s: spanId must be 16 lower-case hex digits, got %r" % (where, s.get("spanId")))
    if "parentSpanId" in s:
        p.need(HEX16.match(str(s["parentSpanId"])),
               "%s: parentSpanId must be 16 hex digits, got %r" % (where, s["parentSpanId"]))
    p.need(isinstance(s.get("name"), str) and s.get("name"), "%s: name" % where)
    p.need(s.get("kind") in KINDS and isinstance(s.get("kind"), int),
           "%s: kind must be a number 0-5, got %r" % (where, s.get("kind")))
    for k in ("startTimeUnixNano", "endTimeUnixNano"):
        # fixed64: a decimal string in the JSON mapping.
        p.need(isinstance(s.get(k), str) and DIGITS.match(s.get(k, "")),
               "%s: %s must be a decimal string, got %r" % (where, k, s.get(k)))
    try:
        start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
        p.need(start <= end, "%s: ends before it starts" % where)
        p.need(start > 1_000_000_000 * 10**9, "%s: start is not nanoseconds since 1970" % where)
    except (KeyError, ValueError, TypeError):
        start = end = 0
    st = s.get("status", {})
    code = 0
    if check_fields(p, st, STATUS_FIELDS, where + ".status"):
        code = st.get("code", 0)
        p.need(code in STATUS and isinstance(code, int),
               "%s: status.code must be 0, 1 or 2, got %r" % (where, code))
        p.need("message" not in st or code == 2,
               "%s: a status message without an error" % where)
    attrs = check_attrs(p, s.get("attributes", []), where)
    return {"id": s.get("spanId"), "parent": s.get("parentSpanId"), "trace": s.get("traceId"),
            "name": s.get("name"), "kind": KINDS.get(s.get("kind"), "?"),
            "status": STATUS.get(code, "?"), "message": st.get("message") if
            isinstance(st, dict) else None, "start": start, "end": end, "attrs": attrs}


def check_request(p, body, where):
    try:
        req = json.loads(body)
    except ValueError as e:
        p.append("%s: not JSON: %s" % (where, e))
        return [], {}
    spans, resource = [], {}
    if not check_fields(p, req, REQUEST_FIELDS, where):
        return spans, resource
    rs = req.get("resourceSpans")
    if not p.need(isinstance(rs, list) and rs, "%s: resourceSpans: a non-empty list" % where):
        return spans, resource
    for i, r in enumerate(rs):
        w = "%s.resourceSpans[%d]" % (where, i)
        if not check_fields(p, r, RESOURCE_SPANS_FIELDS, w):
            continue
        if check_fields(p, r.get("resource", {}), RESOURCE_FIELDS, w + ".resource"):
            resource.update(check_attrs(p, r.get("resource", {}).get("attributes", []),
                                        w + ".resource"))
        for j, ss in enumerate(r.get("scopeSpans", [])):
            w2 = "%s.scopeSpans[%d]" % (w, j)
            if not check_fields(p, ss, SCOPE_SPANS_FIELDS, w2):
                continue
            if check_fields(p, ss.get("scope", {}), SCOPE_FIELDS, w2 + ".scope"):
                p.need(ss.get("scope", {}).get("name") == "pacer", "%s: scope.name" % w2)
            for k, s in enumerate(ss.get("spans", [])):
                sp = check_span(p, s, "%s.spans[%d]" % (w2, k))
                if sp:
                    spans.append(sp)
    return spans, resource


def otlp(dump, parent, attr_keys, child):
    reqs = [r for r in load(dump) if r["path"].endswith("/v1/traces")]
    p = Problems()
    if not reqs:
        print("otlp: no request to /v1/traces")
        return 1
    spans, resource = [], {}
    for i, r in enumerate(reqs):
        p.need(r["method"] == "POST", "request %d: %s, not POST" % (i, r["method"]))
        p.need(r["headers"].get("content-type", "").startswith("application/json"),
               "request %d: Content-Type %r" % (i, r["headers"].get("content-type")))
        s, res = check_request(p, r["body"], "request %d" % i)
        spans += s
        resource.update(res)
    by_id = {s["id"]: s for s in spans}
    p.need(len(by_id) == len(spans), "span ids are not unique")
    p.need(len({s["trace"] for s in spans}) == 1, "spans of more than one trace")
    ptrace = pspan = None
    if parent:
        _, ptrace, pspan, _ = parent.split("-")
        p.need(spans and spans[0]["trace"] == ptrace,
               "the trace is not TRACEPARENT's (%s)" % ptrace)
    roots = []
    for s in spans:
        if s["parent"] and s["parent"] in by_id:
            par = by_id[s["parent"]]
            # Within the parent, give or take a millisecond of rounding.
            p.need(s["start"] >= par["start"] - 1_000_000 and s["end"] <= par["end"] + 1_000_000,
                   "span %s (%s) lies outside its parent %s" % (s["id"], s["name"], par["name"]))
        else:
            roots.append(s)
            p.need(s["parent"] == pspan, "root span %s: parentSpanId %r, want %r"
                   % (s["name"], s["parent"], pspan))
    p.need(len(roots) == 1, "%d root spans, want 1" % len(roots))
    if p:
        for x in p:
            print("otlp: problem:", x)
        return 1
    print("otlp: ok")
    print("service.name=%s" % resource.get("service.name"))
    for k in sorted(resource):
        if k != "service.name":
            print("resource %s=%s" % (k, resource[k]))

    kids = {}
    for s in spans:
        kids.setdefault(s["parent"], []).append(s)

    def show(s, depth):
        extra = ["%s=%s" % (k, s["attrs"][k]) for k in attr_keys if k in s["attrs"]]
        print("%s%s %s %s%s" % ("  " * depth, s["name"], s["kind"], s["status"],
                                "".join(" " + e for e in extra)))
        for c in sorted(kids.get(s["id"], []),
                        key=lambda c: (c["name"], c["attrs"].get("pacer.step.item") or 0,
                                       c["attrs"].get("pacer.attempt.number") or 0)):
            show(c, depth + 1)

    for r in roots:
        show(r, 0)

    # What pacer passed on: each traceparent header it sent, and the
    # TRACEPARENT a program got, must name a span of this trace.
    trace = spans[0]["trace"]

    def named(tp, what):
        m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$", tp or "")
        if not m or m.group(1) != trace or m.group(2) not in by_id:
            print("%s: %r names no span of the trace" % (what, tp))
            return 1
        sp = by_id[m.group(2)]
        par = by_id.get(sp["parent"], {"name": "-"})
        print("%s: the span %s %s (of %s), flags %s" % (what, sp["name"], sp["kind"],
                                                         par["name"], m.group(3)))
        return 0

    bad = 0
    for r in load(dump):
        if not r["path"].endswith("/v1/traces") and "traceparent" in r["headers"]:
            bad |= named(r["headers"]["traceparent"], "traceparent of %s %s"
                         % (r["method"], r["path"]))
    if child:
        with open(child) as f:
            bad |= named(f.read().strip(), "TRACEPARENT of the program")
    return bad


# --------------------------------------------------------------- requests

def requests(dump):
    rids = {}
    for r in load(dump):
        q = urllib.parse.parse_qsl(r["query"], keep_blank_values=True)
        shown = []
        for k, v in q:
            if k == "rid":
                if not UUID.match(v):
                    print("rid is not a UUID: %r" % v)
                    return 1
                v = "<%d>" % rids.setdefault(v, len(rids) + 1)
            shown.append("%s=%s" % (k, v))
        print("%s %s%s" % (r["method"], r["path"], "?" + "&".join(shown) if shown else ""))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        status = 0
        if "--status" in argv:
            status = int(argv[argv.index("--status") + 1])
        serve(argv[2], "--hang" in argv, status)
        return 0
    if len(argv) >= 3 and argv[1] == "otlp":
        parent = argv[argv.index("--parent") + 1] if "--parent" in argv else None
        keys = argv[argv.index("--attrs") + 1].split(",") if "--attrs" in argv else []
        child = argv[argv.index("--child") + 1] if "--child" in argv else None
        return otlp(argv[2], parent, keys, child)
    if len(argv) >= 3 and argv[1] == "requests":
        return requests(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
