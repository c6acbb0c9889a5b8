#!/usr/bin/env python3
"""Checks that pacer's HTML report renders its timeline in a real browser.

Usage: check_html_render.py --pacer PATH [--chromium PATH] [--keep]

Runs the real binary on a small workflow of known shape (a gather of three
sleeps of 200 ms, 500 ms and 1 s, a step that fails after 600 ms under
continue_on_error, and two 300 ms steps sharing a pool of 1, so one waits
300 ms for its permit; the first fails, so the two bars on the lane they
share have different colours) with an html and a json report, opens the HTML in headless
Chromium (Debian's `chromium`), takes a screenshot, decodes the PNG with the
standard library only, and checks what was drawn:

  - the screenshot is not blank, and the timeline's SVG box (its 1 px border,
    #d1d9e0) is there, in full, at the width the report gives it;
  - inside that box, one solid bar per leaf step, lane by lane from the top,
    in the colour of its outcome as runner/report/report.c draws it (#2da44e ok,
    #cf222e failed): four green bars and two red ones;
  - each bar starts and ends where the JSON report's start offset and
    duration put it on the time axis (a few pixels of tolerance): the step
    that waited for the pool starts when it got its permit, not before;
  - the wait is drawn apart, in the "queued" colour (#c297ff), from when the
    waiting step was reached to when it started.

Chromium runs in its own session, is bounded by a timeout, and its whole
process group is killed afterwards; no process started with this run's
profile directory may be left behind. If Chromium is not installed this FAILS:
CI installs it (scripts/setup --test).

Called by tests/cases/report_html_render.yml through an `exec` step; can be
run by hand. Prints "ok html-render" on success; exits 1 on failure.
"""
import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from scenarios import Failure, check

# Colours from runner/report/report.c (html_css): .o-ok and .o-failed fills, the svg
# border.
OK = (0x2D, 0xA4, 0x4E)
FAILED = (0xCF, 0x22, 0x2E)
BORDER = (0xD1, 0xD9, 0xE0)
OUTCOME_COLOURS = {"ok": OK, "failed": FAILED}
QUEUED = (0xC2, 0x97, 0xFF)
TOLERANCE = 10  # per channel, for colour management and anti-aliasing

# Timeline geometry from runner/report/report.c (html_timeline), in SVG units.
SVG_WIDTH, LEFT, PLOT = 1200, 110, 1200 - 110 - 10

WINDOW = (1280, 900)
CHROMIUM_TIMEOUT = 35  # s; the case's step timeout is 50 s, its bound 55 s

WORKFLOW = """\
name: html-render
pools:
  one: { concurrency: 1 }
steps:
  - id: lanes
    gather:
      - id: short
        sleep: 200ms
      - id: medium
        sleep: 500ms
      - id: long
        sleep: 1s
      - id: broken
        shell: "sleep 0.6; exit 1"
        continue_on_error: true
      - id: pooled_a
        pool: one
        shell: "sleep 0.3; exit 1"
        continue_on_error: true
      - id: pooled_b
        pool: one
        sleep: 300ms
"""

CHROMIUM_FLAGS = [
    # As root Chromium needs --no-sandbox; the rest keep it off the network
    # (connections out are refused here) and away from any profile.
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-breakpad", "--disable-crash-reporter", "--hide-scrollbars",
    "--force-device-scale-factor=1", "--force-color-profile=srgb",
]



class Terminated(Exception):
    pass


def on_sigterm(signum, frame):
    # pacer's step timeout sends SIGTERM to our group; unwind so that the
    # `finally` blocks kill Chromium's own session.
    raise Terminated("terminated by signal %d" % signum)


# ------------------------------------------------------------------ PNG


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(path):
    """Returns (width, height, rows): rows[y] is a bytes of R,G,B triples.
    8-bit RGB or RGBA, non-interlaced, filter types 0-4."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "screenshot is not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    check(ihdr is not None and idat, "PNG without IHDR or IDAT")
    width, height, depth, ctype, _comp, _filt, interlace = ihdr
    check(depth == 8 and ctype in (2, 6) and interlace == 0,
          "PNG is not 8-bit RGB/RGBA non-interlaced (depth %d, colour type %d, interlace %d)"
          % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    check(len(raw) == height * (stride + 1), "PNG data is %d bytes, expected %d" %
          (len(raw), height * (stride + 1)))
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        off = y * (stride + 1)
        ft = raw[off]
        cur = bytearray(raw[off + 1:off + 1 + stride])
        if ft == 0:
            pass
        elif ft == 1:
            for i in range(bpp, stride):
                cur[i] = (cur[i] + cur[i - bpp]) & 0xFF
        elif ft == 2:
            # Bytewise add without carries between bytes, on whole rows.
            a = int.from_bytes(cur, "big")
            b = int.from_bytes(prev, "big")
            lo = int.from_bytes(b"\x7f" * stride, "big")
            hi = int.from_bytes(b"\x80" * stride, "big")
            cur = bytearray((((a & lo) + (b & lo)) ^ ((a ^ b) & hi)).to_bytes(stride, "big"))
        elif ft == 3:
            for i in range(stride):
                left = cur[i - bpp] if i >= bpp else 0
                cur[i] = (cur[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ft == 4:
            for i in range(stride):
                if i >= bpp:
                    cur[i] = (cur[i] + paeth(cur[i - bpp], prev[i], prev[i - bpp])) & 0xFF
                else:
                    cur[i] = (cur[i] + prev[i]) & 0xFF
        else:
            raise Failure("PNG row %d has unknown filter type %d" % (y, ft))
        if bpp == 4:  # drop alpha (a screenshot is opaque)
            rgb = bytearray(width * 3)
            for ch in range(3):
                rgb[ch::3] = cur[ch::4]
            rows.append(bytes(rgb))
        else:
            rows.append(bytes(cur))
        prev = cur
    return width, height, rows


# ------------------------------------------------------------------ image checks


def pixel(rows, x, y):
    r = rows[y]
    return r[3 * x], r[3 * x + 1], r[3 * x + 2]


_TABLES = {}


def colour_mask(row, colour):
    """bytes with 1 for each pixel of row within TOLERANCE of colour, else 0."""
    if colour not in _TABLES:
        _TABLES[colour] = [bytes(1 if abs(v - c) <= TOLERANCE else 0 for v in range(256))
                           for c in colour]
    n = len(row) // 3
    bits = -1
    for ch, table in enumerate(_TABLES[colour]):
        bits &= int.from_bytes(row[ch::3].translate(table), "big")
    return bits.to_bytes(n, "big")


def runs_of(rows, y, colour, x0=0, x1=None):
    """Horizontal runs [(start, end_exclusive)] of `colour` in row y, within [x0, x1)."""
    mask = colour_mask(rows[y], colour)
    x1 = len(mask) if x1 is None else x1
    return [(max(m.start(), x0), min(m.end(), x1)) for m in re.finditer(rb"\x01+", mask)
            if m.end() > x0 and m.start() < x1]


def find_svg_box(width, height, rows):
    """The timeline's bordered box: the first and last rows holding a border
    run wider than 5/6 of the SVG, and that run's extent."""
    lines = []
    for y in range(height):
        long_runs = [r for r in runs_of(rows, y, BORDER) if r[1] - r[0] >= SVG_WIDTH * 5 // 6]
        if long_runs:
            lines.append((y, long_runs[0]))
    check(len(lines) >= 2, "no timeline box (a %s-bordered rectangle about %d px wide) in the "
          "screenshot" % ("#%02x%02x%02x" % BORDER, SVG_WIDTH))
    (top, (x0, x1)), (bottom, _) = lines[0], lines[-1]
    check(bottom - top > 40, "timeline box is only %d px tall" % (bottom - top))
    return x0, top, x1, bottom + 1


def find_bars(rows, box):
    """Solid bars of the outcome colours inside the box: bands of adjacent rows
    with a long enough run of one colour. Returns [(colour name, y0, y1, x0, x1)]
    top to bottom; x0/x1 are the medians over the band's rows of the leftmost
    and rightmost pixel of that colour (labels drawn over a bar don't move them)."""
    bx0, by0, bx1, by1 = box
    bars = []
    for name, colour in OUTCOME_COLOURS.items():
        band = []
        for y in range(by0 + 1, by1 - 1):
            rs = [r for r in runs_of(rows, y, colour, bx0 + 1, bx1 - 1) if r[1] - r[0] >= 3]
            if rs and sum(r[1] - r[0] for r in rs) >= 20:
                band.append((y, rs[0][0], rs[-1][1]))
                continue
            if band:
                bars.append((name, band))
                band = []
        if band:
            bars.append((name, band))
    out = []
    for name, band in bars:
        if len(band) < 8:  # a 1-2 px outline of a pale group bar, not a step bar
            continue
        lefts = sorted(b[1] for b in band)
        rights = sorted(b[2] for b in band)
        out.append((name, band[0][0], band[-1][0] + 1, lefts[len(lefts) // 2],
                    rights[len(rights) // 2]))
    out.sort(key=lambda b: b[1])
    return out


def check_screenshot(png, report):
    width, height, rows = decode_png(png)
    check((width, height) == WINDOW, "screenshot is %dx%d, expected %dx%d" %
          ((width, height) + WINDOW))
    # Not blank: on a grid of every 4th pixel, enough ink and enough colours.
    colours, ink, samples = set(), 0, 0
    for y in range(0, height, 4):
        for x in range(0, width, 4):
            px = pixel(rows, x, y)
            colours.add(px)
            samples += 1
            ink += px != (255, 255, 255)
    check(ink >= samples * 0.02, "screenshot is blank: %.2f%% of it is not white" %
          (100.0 * ink / samples))
    check(len(colours) >= 8, "screenshot has only %d colours: nothing rendered" % len(colours))

    box = find_svg_box(width, height, rows)
    bx0, by0, bx1, by1 = box
    # The SVG is SVG_WIDTH px wide plus its 1 px border on each side.
    scale = (bx1 - bx0 - 2) / SVG_WIDTH
    check(abs(scale - 1) < 0.02, "timeline box is %d px wide, expected %d" %
          (bx1 - bx0, SVG_WIDTH + 2))
    check(by1 < height - 1, "timeline box runs off the bottom of the screenshot")

    leaves = sorted((s for s in report["steps"] if s["kind"] == "step"), key=lambda s: s["lane"])
    check([s["outcome"] for s in sorted(leaves, key=lambda s: s["id"])] ==
          ["failed", "ok", "ok", "failed", "ok", "ok"], "inner run: unexpected outcomes %r" %
          [(s["id"], s["outcome"]) for s in leaves])
    # The time axis spans the run, teardown included, as report.c draws it
    # (or the latest end, if later).
    span = max([report["run"]["duration_ms"]] +
               [s["start_offset_ms"] + s["duration_ms"] for s in report["steps"]])

    bars = find_bars(rows, box)
    counts = {name: sum(1 for b in bars if b[0] == name) for name in OUTCOME_COLOURS}
    check(len(bars) == len(leaves), "found %d solid bars (%s) in the timeline, expected %d, "
          "one per step: %r" % (len(bars), ", ".join("%d %s" % (n, k) for k, n in counts.items()),
                                len(leaves), bars))
    slack = 4
    # Bars by row (top to bottom) and colour; leaves by lane and outcome: two
    # steps that ran one after the other share a lane.
    rows_y = sorted({b[1] for b in bars})
    lanes = sorted({s["lane"] for s in leaves})
    check(len(rows_y) == len(lanes), "bars on %d rows for %d lanes" % (len(rows_y), len(lanes)))
    by_key = {(rows_y.index(b[1]), b[0]): b for b in bars}
    check(len(by_key) == len(bars), "two bars of one colour on one row: %r" % bars)
    for s in leaves:
        bar = by_key.get((lanes.index(s["lane"]), s["outcome"]))
        check(bar, "%s: no %s bar on the row of lane %d" % (s["id"], s["outcome"], s["lane"]))
        name, y0, y1, x0, x1 = bar
        what = "%s (lane %d)" % (s["id"], s["lane"])
        check(name == s["outcome"], "%s: bar is %s, expected %s" % (what, name, s["outcome"]))
        check(12 <= y1 - y0 <= 20, "%s: bar is %d px tall" % (what, y1 - y0))
        want0 = bx0 + 1 + scale * (LEFT + s["start_offset_ms"] / span * PLOT)
        want1 = want0 + scale * s["duration_ms"] / span * PLOT
        check(abs(x0 - want0) <= slack and abs(x1 - want1) <= slack,
              "%s: bar spans x %d-%d, expected %.0f-%.0f (%.0f ms from %.0f ms of %.0f)" %
              (what, x0, x1, want0, want1, s["duration_ms"], s["start_offset_ms"], span))

    # The pooled step that waited: its wait is drawn in the queued colour,
    # from when it was reached to when it started, and nowhere else.
    waited = [s for s in leaves if s["queued_ms"] > 100]
    check(len(waited) == 1, "expected one step to wait for the pool: %r" %
          [(s["id"], s["queued_ms"]) for s in leaves])
    w = waited[0]
    xs = [r for y in range(by0 + 1, by1 - 1) for r in runs_of(rows, y, QUEUED, bx0 + 1, bx1 - 1)]
    check(xs, "no queued area (#%02x%02x%02x) in the timeline" % QUEUED)
    qx0, qx1 = min(r[0] for r in xs), max(r[1] for r in xs)
    want0 = bx0 + 1 + scale * (LEFT + w["ready_offset_ms"] / span * PLOT)
    want1 = bx0 + 1 + scale * (LEFT + w["start_offset_ms"] / span * PLOT)
    check(abs(qx0 - want0) <= slack and abs(qx1 - want1) <= slack,
          "queued area spans x %d-%d, expected %.0f-%.0f" % (qx0, qx1, want0, want1))
    return bars


# ------------------------------------------------------------------ running


def our_processes(marker):
    """PIDs of live (non-zombie) processes whose command line holds marker."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if marker.encode() in cmd:
            pids.append(int(d))
    return pids


def screenshot(chromium, html, png, profile, log):
    cmd = [chromium] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile, "--window-size=%d,%d" % WINDOW,
        "--screenshot=" + png, "file://" + html]
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        try:
            rc = p.wait(CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure("chromium did not finish within %d s" % CHROMIUM_TIMEOUT)
        check(rc == 0, "chromium exited with %d" % rc)
        check(os.path.exists(png) and os.path.getsize(png) > 0, "chromium wrote no screenshot")
    finally:
        # Whatever happened, nothing of this Chromium outlives the check.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        deadline = time.monotonic() + 5
        left = our_processes(profile)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = our_processes(profile)
        for pid in left:  # escaped the group (setsid): ours by the profile path
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    check(not left, "chromium left processes behind: %r" % left)
    return time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pacer", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    if not opts.chromium or not os.access(opts.chromium, os.X_OK):
        print("FAIL html-render: chromium not found (install Debian's `chromium` package; "
              "scripts/setup --test does). This test does not skip.", file=sys.stderr)
        return 1

    tmp = tempfile.mkdtemp(prefix="pacer-html-render-")
    ok = False
    log_path = os.path.join(tmp, "chromium.log")
    try:
        wf = os.path.join(tmp, "wf.yml")
        with open(wf, "w", encoding="utf-8") as f:
            f.write(WORKFLOW)
        html = os.path.join(tmp, "report.html")
        rjson = os.path.join(tmp, "report.json")
        e = dict(os.environ, NO_COLOR="1")
        p = subprocess.run([opts.pacer, "run", wf, "--progress", "never", "--report",
                            "html:" + html, "--report", "json:" + rjson],
                           capture_output=True, text=True, errors="replace", env=e, timeout=15)
        check(p.returncode == 0, "inner run exited %d:\n%s" % (p.returncode, p.stderr[-2000:]))
        with open(rjson, encoding="utf-8") as f:
            report = json.load(f)

        png = os.path.join(tmp, "shot.png")
        profile = os.path.join(tmp, "profile")
        os.mkdir(profile)
        with open(log_path, "wb") as log:
            took = screenshot(opts.chromium, html, png, profile, log)
        t0 = time.monotonic()
        bars = check_screenshot(png, report)
        print("ok html-render (chromium %.1fs, decode+check %.1fs; bars: %s)" % (
            took, time.monotonic() - t0,
            " ".join("%s@%d-%d" % (b[0], b[3], b[4]) for b in bars)))
        ok = True
        return 0
    except (Failure, Terminated, subprocess.TimeoutExpired) as ex:
        print("FAIL html-render: %s" % ex, file=sys.stderr)
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                # Without a D-Bus, Chromium complains about it at length: noise.
                tail = [l for l in f.read().splitlines() if "dbus" not in l.lower()][-15:]
            print("--- chromium output (last lines, D-Bus noise left out) ---\n" +
                  "\n".join(tail), file=sys.stderr)
        return 1
    finally:
        if ok and not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(os.path.join(tmp, "profile"), ignore_errors=True)
            print("files kept in %s (report.html, shot.png, chromium.log)" % tmp, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
