#!/usr/bin/env bash
# Runs a command while CPU hogs keep every core busy, so that scheduling
# races (a timer firing before a socket is watched, a signal landing in the
# middle of a teardown, a child reaped late) show up in CI rather than for
# users. The hogs are stress-ng's CPU workers, two per core (the machine
# looks like one shared with other jobs), at the same priority as the tests;
# they are stopped when the command ends, whatever its outcome.
#
# Usage: tests/contention.sh COMMAND [ARGS...]     exits with COMMAND's status
# Environment: PACER_HOGS=N  number of hogs (default: 2 x the number of cores)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: tests/contention.sh COMMAND [ARGS...]" >&2; exit 2; }
if ! command -v stress-ng >/dev/null; then
  echo "tests/contention.sh: stress-ng is not installed (scripts/setup --test)" >&2
  exit 2
fi
hogs=${PACER_HOGS:-$((2 * $(nproc)))}
# The time limit is only a safety net should this script be killed.
stress-ng --cpu "$hogs" --cpu-method int64 --timeout 1800s --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true' EXIT
# Start the command once the workers exist (bounded: 5 s).
for _ in $(seq 500); do
  [ "$(pgrep -c -P "$hog" || true)" -ge "$hogs" ] && break
  sleep 0.01
done
status=0
"$@" || status=$?
exit $status
