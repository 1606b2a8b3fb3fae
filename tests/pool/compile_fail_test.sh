#!/usr/bin/env bash
# Misuse of mp::Pool is a compile-time error that says what is wrong: each
# case under compile_fail/ (its first line: "// EXPECT: <message>") must
# fail to compile with that message, against mp's headers as tools/install
# lays them out (//tools:mp_dist); compile_fail/ok.cc, a correct use, must
# compile, so that a broken include path cannot pass for the expected
# failures.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

runfiles=${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}
scratch=${TEST_TMPDIR:?}
export TMPDIR=$scratch
include=$runfiles/tools/mp_dist/include
[ -f "$include/mp/pool/pool.h" ] || fail "mp/pool/pool.h not in the install tree"
cases=$runfiles/tests/pool/compile_fail
compile() { g++ -std=c++20 -fsyntax-only -I"$include" "$1"; }

compile "$cases/ok.cc" || fail "the correct use (ok.cc) does not compile"
echo "ok: ok.cc compiles"

n=0
for c in "$cases"/*.cc; do
  [ "$(basename "$c")" = ok.cc ] && continue
  want=$(sed -n '1s|^// EXPECT: ||p' "$c")
  [ -n "$want" ] || fail "$(basename "$c") has no '// EXPECT:' line"
  if out=$(compile "$c" 2>&1); then
    fail "$(basename "$c") compiled; it should not"
  fi
  grep -qF "$want" <<<"$out" ||
    fail "$(basename "$c") failed without saying '$want':
$(head -n 20 <<<"$out")"
  echo "ok: $(basename "$c") is refused: $want"
  n=$((n + 1))
done
[ "$n" -ge 4 ] || fail "only $n cases ran"
