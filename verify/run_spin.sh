#!/bin/bash
# verify/run_spin.sh MODEL MODE EXPECT [SPIN_DEFINE...]
#
# Generates the verifier for a Promela MODEL (spin -a), compiles it (gcc) and
# runs it exhaustively. MODE:
#   safety      assertions and invalid end states (a process blocked forever
#               in a state not marked as a valid end is an error)
#   assert      assertions only (pan -E: blocked processes are not errors)
#   ltl:NAME    the LTL property NAME, acceptance cycles under weak fairness
#               (pan -a -f -N NAME)
# EXPECT: pass (errors: 0 and a complete search) or fail (the verifier must
# find a violation: used for the broken twins).
# SPIN_DEFINE: -DNAME[=VALUE] options for spin's preprocessor (configuration
# and the BREAK_* switches of the twins).
set -u

if [[ $# -lt 3 ]]; then
  echo "usage: $0 MODEL MODE EXPECT [-DNAME[=VALUE]...]" >&2
  exit 2
fi
model_path=$1 mode=$2 expect=$3
shift 3
defines=("$@")
model=${model_path##*/}

fail() { echo "FAIL: $model: $*" >&2; exit 1; }

case "$expect" in pass|fail) ;; *) fail "EXPECT must be pass or fail, not '$expect'" ;; esac

SPIN=$(command -v spin) || fail "spin (the Promela model checker) is not on PATH ($PATH). Install Debian's 'spin' package (tools/setup does)."
CC=$(command -v gcc || command -v cc) || fail "no C compiler (gcc) on PATH ($PATH): it is needed to compile spin's pan.c"

[[ -f "$model_path" ]] || fail "model file '$model_path' not found"
work="${TEST_TMPDIR:-$(mktemp -d)}/spin.$model.$$"
mkdir -p "$work"
cp "$model_path" "$work/$model"
cd "$work" || fail "cannot cd to $work"

cflags=(-O2 -w -DCOLLAPSE)
panflags=(-m1000000)
case "$mode" in
  safety) cflags+=(-DSAFETY -DNOCLAIM); what="assertions + invalid end states" ;;
  assert) cflags+=(-DSAFETY -DNOCLAIM); panflags+=(-E); what="assertions" ;;
  ltl:*)  cflags+=(-DNFAIR=3)  # weak fairness for up to 8 processes
          panflags+=(-a -f -N "${mode#ltl:}")
          what="LTL ${mode#ltl:} (acceptance cycles, weak fairness)" ;;
  *) fail "unknown MODE '$mode' (safety, assert or ltl:NAME)" ;;
esac

echo "spin: $model: checking $what; defines: ${defines[*]:-(none)}; expect $expect"
"$SPIN" "${defines[@]}" -a "$model" > spin.log 2>&1 || { cat spin.log; fail "spin -a failed"; }
"$CC" "${cflags[@]}" -o pan pan.c > cc.log 2>&1 || { cat cc.log; fail "gcc pan.c failed"; }
./pan "${panflags[@]}" > pan.log 2>&1
rc=$?
grep -Ev '^(unreached in|	[^ ]*\.pml:[0-9]+, state|	\([0-9]+ of [0-9]+ states\))' pan.log

errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log | tail -1)
states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | tail -1)
depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' pan.log | tail -1)
[[ -n "$errors" ]] || fail "no 'errors:' line in pan's output (pan exit status $rc)"
if grep -q "too small" pan.log; then
  fail "incomplete search: $(grep 'too small' pan.log | head -1)"
fi

if [[ -f "$model.trail" ]]; then
  echo "---- counterexample (spin -t -p) ----"
  "$SPIN" "${defines[@]}" -t -p -noclaim "$model" 2>&1 | grep -E '^ *[0-9]+:' | tail -60
  echo "---- end of counterexample ----"
fi

summary="spin: $model ${defines[*]:-} [$mode]: $states states, depth $depth, errors: $errors (expected $expect)"
if [[ "$expect" == pass ]]; then
  if [[ "$errors" != 0 ]] || grep -qE "^pan:[0-9]+: |error:" pan.log; then
    echo "$summary"; fail "the verifier found a violation"
  fi
else
  if [[ "$errors" == 0 ]]; then
    echo "$summary"; fail "the verifier found NO violation in a model built to fail"
  fi
fi
echo "$summary"
