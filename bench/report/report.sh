#!/usr/bin/env bash
# `bazel run //bench:report -- [--quick] [--compare=DIR] [--out=DIR] ...`:
# runs report.py (beside this file) under Debian's /usr/bin/python3 (a pyenv
# python3 on the PATH would not see python3-matplotlib). See report.py.
set -euo pipefail
script=""
for c in "$0.runfiles/mp/bench/report/report.py" \
         "${RUNFILES_DIR:-/nonexistent}/mp/bench/report/report.py" \
         "$(dirname "$0")/report.py"; do
  if [ -f "$c" ]; then script="$c"; break; fi
done
if [ -z "$script" ]; then
  echo "report: cannot find report.py beside $0" >&2
  exit 1
fi
if [ ! -x /usr/bin/python3 ]; then
  echo "report: /usr/bin/python3 is missing; run tools/setup" >&2
  exit 1
fi
exec /usr/bin/python3 "$script" "$@"
