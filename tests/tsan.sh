#!/usr/bin/env bash
# The ThreadSanitizer pass: on a build configured with -DPACER_TSAN=ON
# (scripts/test builds build-tsan/), runs the unit tests and the workflow
# cases of tests/tsan.txt, then fails if ThreadSanitizer reported anything.
#
# Reports go to files (TSAN_OPTIONS log_path), not to stderr: that catches
# the pacer a case runs from a shell step with its stderr redirected, and a
# pacer that leaves through _exit (the watchdog, a second signal). They are
# kept in BUILD_DIR/tsan-reports/ and printed. Suppressions (library noise
# only, each with its reason) are in tests/tsan.supp.
#
# Usage: tests/tsan.sh [BUILD_DIR]   (default build-tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

if ! ldd "$dir/pacer" 2>/dev/null | grep libtsan >/dev/null; then
  echo "tsan.sh: $dir/pacer is not a ThreadSanitizer build (configure with -DPACER_TSAN=ON)" >&2
  exit 2
fi
logs="$PWD/$dir/tsan-reports"
rm -rf "$logs"
mkdir -p "$logs"
# halt_on_error=0: see every report of a run, not only the first.
# second_deadlock_stack=1: both stacks of a lock-order inversion.
export TSAN_OPTIONS="log_path=$logs/tsan suppressions=$PWD/tests/tsan.supp halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"

status=0
t0=$SECONDS
# The layer checker is plain Python: the normal build's ctest runs it.
(cd "$dir" && ctest --output-on-failure -j2 -E '^check_layers') || status=1
t1=$SECONDS
# Upper time bounds x3 (TSan makes pacer 2-5 times slower here); peak RSS
# bounds mean nothing with TSan's shadow memory.
"$PY" tests/run_cases.py --pacer "$dir/pacer" --time-factor 3 --no-rss \
  --cases-from tests/tsan.txt || status=1
t2=$SECONDS

shopt -s nullglob
reports=("$logs"/tsan.*)
if [ ${#reports[@]} -gt 0 ]; then
  echo "tsan.sh: ThreadSanitizer reported in ${#reports[@]} process(es) (kept in $logs):" >&2
  for f in "${reports[@]}"; do
    echo "--- $f" >&2
    cat "$f" >&2
  done
  status=1
fi
echo "tsan.sh: unit tests $((t1 - t0)) s, cases $((t2 - t1)) s, ${#reports[@]} report file(s)" >&2
exit $status
