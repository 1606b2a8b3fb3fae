#!/usr/bin/env bash
# Runs report_test.py under Debian's /usr/bin/python3 (see report_test.py).
exec /usr/bin/python3 "$TEST_SRCDIR/mp/bench/report/report_test.py" "$@"
