#!/usr/bin/env python3
"""CPython's multiprocessing.Manager on manager_bench's cases, for the report.

Prints Google Benchmark's JSON (gbench_json.py, beside this file) so the
report can merge it with bench/manager_bench's output. Names are
`case/python_manager`, the same cases as manager_bench, one operation per
iteration (time_unit us):

  dict_set_int/python_manager   d[k] = v, k over 1000 int keys (all present)
  dict_get_int/python_manager   v = d[k] over the same keys
  list_append/python_manager    l.append(i) (cleared every 1 M items)
  value_add/python_manager      v.value += 1 on a Manager Value('q'): a get
                                and a set, two round trips (and not atomic,
                                as Python users write it)

Every operation is a round trip through the manager's server process. Runs
under any python3 with nothing installed.

  python3 bench/peers/python_manager.py --repetitions=3 > python_manager.json
  python3 bench/peers/python_manager.py --quick     # seconds
"""

import argparse
import itertools
import json
import multiprocessing
import sys

import gbench_json  # beside this file

KEYS = 1000
LIST_CLEAR_AT = 1 << 20


def manager_cases(manager):
    d = manager.dict()
    for k in range(KEYS):
        d[k] = 0
    lst = manager.list()
    val = manager.Value("q", 0)
    counter = itertools.count()

    def dict_set():
        i = next(counter)
        d[i % KEYS] = i

    def dict_get():
        return d[next(counter) % KEYS]

    appended = [0]

    def list_append():
        if appended[0] == LIST_CLEAR_AT:
            del lst[:]
            appended[0] = 0
        lst.append(appended[0])
        appended[0] += 1

    def value_add():
        val.value += 1

    return [
        gbench_json.Case("dict_set_int/python_manager", dict_set, 1, "us"),
        gbench_json.Case("dict_get_int/python_manager", dict_get, 1, "us"),
        gbench_json.Case("list_append/python_manager", list_append, 1, "us"),
        gbench_json.Case("value_add/python_manager", value_add, 1, "us"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repetitions", type=int, default=1)
    ap.add_argument("--min_time", type=float, default=0.5,
                    help="seconds per repetition (at least one call)")
    ap.add_argument("--quick", action="store_true",
                    help="min_time=0.05: the whole run in seconds")
    ap.add_argument("--filter", default="", help="substring of the names to run")
    args = ap.parse_args()
    if args.quick:
        args.min_time = 0.05
    if args.repetitions < 1 or args.min_time < 0:
        ap.error("--repetitions must be at least 1, --min_time not negative")

    rows = []
    with multiprocessing.Manager() as manager:  # the server exits with it
        for case in manager_cases(manager):
            if args.filter in case.name:
                rows.extend(gbench_json.measure(case, args.min_time, args.repetitions))
    json.dump(gbench_json.report(rows, {}), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
