#!/usr/bin/env bash
# Guards the first command a newcomer runs. scripts/demo installs only the
# build packages (scripts/setup without --test) and builds with the default
# options; on a fresh machine that once stopped at the cmocka check. This
# replays that situation here, cheaply, without a fresh machine: pkg-config
# is pointed at a directory that holds every .pc file of this machine except
# those of the test-only packages (scripts/setup --list-test), and then
#   1. a configure with default options must succeed, say that the unit
#      tests are not built, and not make warnings errors (-Werror),
#   2. pacer must build, and `pacer version` must run,
#   3. a configure with -DPACER_TESTS=ON must fail with a message naming
#      cmocka (so scripts/test can never silently skip the unit tests).
# The full check, on a brand-new Debian, is ../shared/fresh-machine; this is
# what stops a regression between two such runs.
#
# Usage: tests/check_first_build.sh [WORK_DIR]   (default: a temporary one)
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-}
if [ -z "$work" ]; then
  work=$(mktemp -d /tmp/pacer-first-build.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/pkgconfig"
fail() { echo "check_first_build: FAIL: $*" >&2; exit 1; }

# The .pc files of the test-only packages that are installed here.
excluded=()
while read -r pkg; do
  while read -r f; do
    case "$f" in *.pc) excluded+=("$(basename "$f")") ;; esac
  done < <(dpkg -L "$pkg" 2>/dev/null || true)
done < <(scripts/setup --list-test)
[ ${#excluded[@]} -gt 0 ] || fail "no test-only package with a .pc file is installed (is cmocka?)"

# Every other .pc file on pkg-config's default search path, first one wins.
IFS=: read -r -a dirs <<<"$(pkg-config --variable pc_path pkg-config)"
for d in "${dirs[@]}"; do
  for f in "$d"/*.pc; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    skip=0
    for x in "${excluded[@]}"; do [ "$x" = "$name" ] && skip=1; done
    [ $skip -eq 1 ] || [ -e "$work/pkgconfig/$name" ] || ln -s "$f" "$work/pkgconfig/$name"
  done
done
export PKG_CONFIG_LIBDIR="$work/pkgconfig" PKG_CONFIG_PATH=""
unset CMAKE_PREFIX_PATH
pkg-config --exists cmocka && fail "cmocka is still visible to pkg-config"

# 1. Default options, as scripts/build runs them.
if ! cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     >"$work/configure.out" 2>"$work/configure.err"; then
  cat "$work/configure.out" "$work/configure.err" >&2
  fail "configure with default options failed without the test-only packages (${excluded[*]})"
fi
grep -q "unit tests are not built" "$work/configure.err" ||
  fail "configure did not say that the unit tests are not built: $(cat "$work/configure.err")"
# Warnings are not errors by default (PACER_WERROR=OFF): a newcomer's newer
# compiler may warn where ours does not, and must still build pacer.
flags=$(cat "$work/build/CMakeFiles/pacercore.dir/flags.make" 2>/dev/null ||
        cat "$work/build/build.ninja")
case "$flags" in
  *-Werror*) fail "the default configuration compiles with -Werror (PACER_WERROR must default to OFF)" ;;
esac

# 2. The build, and the binary starts.
cmake --build "$work/build" -j"$(nproc)" >"$work/build.out" 2>&1 ||
  { tail -30 "$work/build.out" >&2; fail "build failed without the test-only packages"; }
"$work/build/pacer" version >/dev/null || fail "the pacer built without test packages does not run"
[ ! -e "$work/build/test_engine" ] || fail "unit tests were built without cmocka"

# 3. PACER_TESTS=ON insists.
if cmake -S . -B "$work/build-on" -DPACER_TESTS=ON >"$work/on.out" 2>"$work/on.err"; then
  fail "configure with -DPACER_TESTS=ON succeeded without cmocka"
fi
grep -q "cmocka" "$work/on.err" || fail "PACER_TESTS=ON failed without naming cmocka: $(cat "$work/on.err")"

echo "check_first_build: ok (without ${excluded[*]}: configure, build and run; PACER_TESTS=ON refuses)" >&2
