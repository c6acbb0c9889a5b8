#!/usr/bin/env bash
# Runs a representative subset of the workflow cases with pacer under
# valgrind memcheck: every pacer process (nested runs included) must finish
# with no memory error and no definite or indirect leak.
#
# Usage: tests/valgrind.sh [--pacer PATH] [CASE...]
#   --pacer PATH  the binary (default build/pacer); not an ASan build
#   CASE...       case-name substrings instead of the default subset
#
# How: run_cases.py is pointed at a wrapper that execs pacer under valgrind
# (--error-exitcode, so an error also shows as a wrong exit code) with one
# log file per process; afterwards every log is checked for errors and
# leaks, and the offending ones are printed. Upper time bounds are relaxed
# (--time-factor 30) since valgrind runs pacer 10-30 times slower, and more
# on a loaded machine (the alias bomb took 18 s of a 15 s bound there); four
# cases run at once, since most of a case's time is spent waiting. Cases that
# send a signal at a fixed moment are left out: under valgrind pacer may not
# have installed its handlers yet.
#
# Suppressions (tests/valgrind.supp) are only for documented library noise;
# each entry says why it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

pacer=build/pacer
while [ $# -gt 0 ]; do
  case "$1" in
    --pacer) pacer="$2"; shift 2 ;;
    --pacer=*) pacer="${1#*=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
if ! command -v valgrind >/dev/null; then
  echo "tests/valgrind.sh: valgrind is not installed (apt-get install -y valgrind)" >&2
  exit 2
fi
pacer="$(cd "$(dirname "$pacer")" && pwd)/$(basename "$pacer")"
[ -x "$pacer" ] || { echo "tests/valgrind.sh: no binary at $pacer" >&2; exit 2; }
if nm -an "$pacer" 2>/dev/null | grep __asan_init >/dev/null; then
  echo "tests/valgrind.sh: $pacer is an ASan build; valgrind needs a plain one" >&2
  exit 2
fi

# The subset: the engine (sequence, gather, fan-out, pools, retries,
# timeouts, cancellation, deadline), programs (capture, env/stdin, timeouts,
# caps, failures), expressions, reports, and loader errors of every kind.
cases=(
  gather_order for_each_order_and_concurrency fail_fast_cancels_siblings fanout_body_scope
  pool_rate retry_until_ready group_timeout workflow_deadline
  exec_capture exec_env_cwd_stdin exec_output_cap exec_timeout_kills_group fault_no_leaks
  alias-bomb deep-nesting expr-syntax-error merge-key invalid-utf8
)
[ $# -gt 0 ] && cases=("$@")

tmp=$(mktemp -d /tmp/pacer-valgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/logs"
supp="$PWD/tests/valgrind.supp"
cat >"$tmp/pacer" <<WRAP
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=97 --leak-check=full \\
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \\
  --track-origins=no --num-callers=30 --suppressions="$supp" \\
  --log-file="$tmp/logs/vg.%p.log" "$pacer" "\$@"
WRAP
chmod +x "$tmp/pacer"
# Test shims built beside the binary (tests/shims/), which cases find there.
[ -d "$(dirname "$pacer")/shims" ] && ln -s "$(dirname "$pacer")/shims" "$tmp/shims"

# Debian's python3 (what scripts/setup installs packages for) wins over others.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
status=0
"$PY" tests/run_cases.py --pacer "$tmp/pacer" --time-factor 30 --jobs 4 "${cases[@]}" ||
  status=1

bad=0
for log in "$tmp"/logs/vg.*.log; do
  [ -e "$log" ] || continue
  if grep -qE "ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]" "$log"; then
    bad=$((bad + 1))
    echo "== valgrind report: $(basename "$log")" >&2
    sed -n '1,120p' "$log" >&2
  fi
done
nlogs=$(ls "$tmp"/logs | wc -l)
if [ "$bad" -gt 0 ]; then
  echo "valgrind: $bad of $nlogs pacer processes had errors or leaks" >&2
  status=1
else
  echo "valgrind: $nlogs pacer processes, no errors, no leaks" >&2
fi
exit $status
