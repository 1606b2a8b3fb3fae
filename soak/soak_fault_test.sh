#!/usr/bin/env bash
# The soak's checks can fail: each --inject breaks one thing on purpose (a
# corrupted payload, a message put twice, one acknowledged but never put, a
# critical section that leaves the invariant broken, owner-died events left
# uncounted, a consumer that stops, a /dev/shm entry left behind), and the
# soak must exit 1 with that failure in its summary.
set -uo pipefail

soak="$1"
out="${TEST_TMPDIR:-/tmp}/soak_fault.out"
failures=0

# expect INJECTION SUMMARY_LINE_REGEX [extra flags...]
expect() {
  local inject="$1" pattern="$2"
  shift 2
  "$soak" --inject="$inject" --progress_every=10s "$@" >"$out" 2>&1
  local rc=$?
  if [ "$rc" -eq 1 ] && grep -Eq "$pattern" "$out" &&
      grep -Eq '^result +FAIL$' "$out"; then
    echo "ok    --inject=$inject: exit 1, $(grep -Em1 "$pattern" "$out")"
  else
    echo "FAIL  --inject=$inject: exit $rc, want 1 and a line matching /$pattern/"
    cat "$out"
    failures=$((failures + 1))
  fi
}

expect torn '^torn +[1-9]' --duration=1s --kill_every=10ms
expect dup '^duplicates +[1-9]' --duration=1s --kill_every=10ms
expect lose '^missing +[1-9]' --duration=1s --kill_every=10ms
expect lock '^lock invariant +[1-9]' --duration=1s --kill_every=10ms
# Needs a locker killed inside its critical section: mostly lockers to kill,
# and time for a dozen kills even where fork is slow (ASan).
expect owner_died '^owner-died seen .* FAIL$' --duration=2s --kill_every=10ms \
  --producers=1 --consumers=1 --lockers=4 --signal_pairs=0
expect hang '^hangs +[1-9]' --duration=3s --kill_every=0 --hang_timeout=1s
expect shm '^/dev/shm left +[1-9]' --duration=1s --kill_every=10ms

[ "$failures" -eq 0 ] || { echo "$failures injection(s) not caught"; exit 1; }
echo "PASS: every injected fault was caught"
