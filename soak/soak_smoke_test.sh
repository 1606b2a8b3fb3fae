#!/usr/bin/env bash
# Runs the soak for 5 s with a kill every 20 ms (on average): it must pass,
# and its summary must show messages moved and workers killed, so that a soak
# which silently stopped doing its job fails here.
set -uo pipefail

soak="$1"
out="${TEST_TMPDIR:-/tmp}/soak_smoke.out"

"$soak" --duration=5s --kill_every=20ms --progress_every=1s >"$out" 2>&1
rc=$?
cat "$out"

fail() {
  echo "FAIL: $*"
  exit 1
}
[ "$rc" -eq 0 ] || fail "the soak exited with $rc"
grep -Eq '^result +PASS$' "$out" || fail "no 'result PASS' line"
moved=$(awk '/^messages moved / {print $3}' "$out")
kills=$(awk '/^kills / {print $2}' "$out")
[ -n "$moved" ] && [ "$moved" -gt 0 ] || fail "messages moved: '$moved'"
[ -n "$kills" ] && [ "$kills" -gt 0 ] || fail "kills: '$kills'"
echo "PASS: moved $moved messages through $kills kills"
