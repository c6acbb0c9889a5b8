#!/bin/sh
# Used by validate_hostile_sizes.yml: `pacer validate "$@"`, stopped after
# 5 s times the harness's time factor (PACER_TIME_FACTOR: sanitizer builds
# and loaded machines are slower; what must not happen is a quadratic
# blow-up, which takes minutes). A stopped validate exits 124.
lim=$(awk -v f="${PACER_TIME_FACTOR:-1}" 'BEGIN { print 5 * f }')
exec timeout "$lim" "$PACER_BIN" validate "$@"
