#!/usr/bin/env bash
# `bazel run //bench:report -- [--quick] [--compare=DIR] [--out=DIR] ...`:
# runs bench/report/report.py under Debian's /usr/bin/python3 (a pyenv
# python3 on the PATH would not see python3-matplotlib). See report.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="$here/report.py"
# Under `bazel run` the script sits in the runfiles tree.
if [ ! -f "$script" ] && [ -n "${RUNFILES_DIR:-}" ]; then
  script="$RUNFILES_DIR/mp/bench/report/report.py"
fi
if [ ! -x /usr/bin/python3 ]; then
  echo "report: /usr/bin/python3 is missing; run tools/setup" >&2
  exit 1
fi
exec /usr/bin/python3 "$script" "$@"
