#!/usr/bin/env bash
# Runs the timing- and cancellation-sensitive workflow cases again while
# stress-ng keeps every CPU busy, so scheduling races show up here rather
# than for users on a loaded machine. A case that fails only under load is
# a bug (in pacer, or in the case's assumptions), never a reason to retry.
#
# Usage: tests/contention.sh [--pacer PATH] [--rounds N] [CASE...]
#   --pacer PATH  the binary (default build/pacer)
#   --rounds N    how many times to run the cases (default 3)
#   CASE...       case-name substrings instead of the default set
#
# Upper time bounds are relaxed (--time-factor 3): under load everything is
# slower; what must not change is the outcome.
set -euo pipefail
cd "$(dirname "$0")/.."

pacer=build/pacer
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --pacer) pacer="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
command -v stress-ng >/dev/null || {
  echo "tests/contention.sh: stress-ng is not installed (scripts/setup --test)" >&2
  exit 2
}
cases=(
  group_timeout step_timeout workflow_deadline timeout_option sigterm sigint sighup
  fault_sig fault_blocked exec_sigint exec_timeout lua_sigint lua_timeout http_sigint
  http_step_timeout retry_on_timeout fail_fast pool_ report_ stdout_ outfile for_each
)
[ $# -gt 0 ] && cases=("$@")

stress-ng --cpu "$(nproc)" --timeout 3600s >/dev/null 2>&1 &
hog=$!
trap 'kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null || true' EXIT

status=0
for r in $(seq "$rounds"); do
  echo "== contention round $r/$rounds"
  python3 tests/run_cases.py --pacer "$pacer" --time-factor 3 "${cases[@]}" || status=1
done
exit $status
