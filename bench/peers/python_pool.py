#!/usr/bin/env python3
"""CPython's multiprocessing.Pool on pool_bench's cases, for the report.

Prints Google Benchmark's JSON (the schema of `--benchmark_format=json`:
{"context": ..., "benchmarks": [{"name", "run_name", "run_type",
"iterations", "real_time", "cpu_time", "time_unit", "items_per_second",
...}]}) so the report can merge it with bench/pool_bench's output. Names are
`case/python`, the same cases as pool_bench:

  pool_map_tiny/python             map(x*2, range(n), chunksize=1)
  pool_map_tiny_chunked/python     the same, Python's automatic chunksize
  pool_apply_async_tiny/python     n apply_async, then every get()
  pool_apply_roundtrip/python      one apply() at a time on Pool(1)
  pool_imap_unordered_tiny/python  imap_unordered(x*2, range(n)), chunksize 1
  pool_map_cpu/python/W            ~100 us tasks (calibrated) over W workers,
  pool_map_cpu/python_serial/W     ... and the same tasks in one process

Runs under any python3 with nothing installed (gbench_json.py, beside this
file, writes the JSON). Workers: max(2, cpu_count)
as pool_bench, or --processes. cpu_time is the parent's only (as in
pool_bench's cross-process cases): compare real_time and items_per_second.

  python3 bench/peers/python_pool.py --repetitions=3 > python_pool.json
  python3 bench/peers/python_pool.py --quick     # seconds
"""

import argparse
import json
import multiprocessing
import os
import sys
import time

import gbench_json  # beside this file

SPIN_ROUNDS = 1000  # recalibrated in main() to ~100 us per task


def twice(x):
    return x * 2


def spin(seed):
    x = seed + 1
    for _ in range(SPIN_ROUNDS):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x >> 33


def set_spin_rounds(rounds):  # a Pool initializer: workers match the parent
    global SPIN_ROUNDS
    SPIN_ROUNDS = rounds


def calibrate_spin(target_s=100e-6):
    global SPIN_ROUNDS
    SPIN_ROUNDS = 1000
    best = float("inf")
    for _ in range(5):  # the fastest of 5 tries: the others were interrupted
        t0 = time.perf_counter()
        for i in range(20):
            spin(i)
        best = min(best, time.perf_counter() - t0)
    per_round = best / (20 * SPIN_ROUNDS)
    SPIN_ROUNDS = max(1, int(target_s / per_round))
    return SPIN_ROUNDS


def context():
    # fork where it exists (the start method pool_bench's peers use);
    # 3.14 made forkserver the default on Linux.
    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return multiprocessing.get_context()


def pool_cases(args, ctx):
    n, workers = args.n, args.processes
    pools = {}

    def opener(key, procs, **kw):
        def setup():
            pools[key] = ctx.Pool(procs, **kw)

        def teardown():
            pools[key].terminate()
            pools[key].join()
            del pools[key]

        return setup, teardown

    cases = []

    def add(name, run, items, unit="ms", procs=workers, **kw):
        setup, teardown = opener(name, procs, **kw)
        cases.append(gbench_json.Case(name, run, items, unit, setup, teardown))

    add("pool_map_tiny/python",
        lambda: pools["pool_map_tiny/python"].map(twice, range(n), chunksize=1), n)
    add("pool_map_tiny_chunked/python",
        lambda: pools["pool_map_tiny_chunked/python"].map(twice, range(n)), n)

    def apply_async():
        p = pools["pool_apply_async_tiny/python"]
        rs = [p.apply_async(twice, (i,)) for i in range(n)]
        for r in rs:
            r.get()

    add("pool_apply_async_tiny/python", apply_async, n)
    counter = [0]

    def roundtrip():
        counter[0] += 1
        pools["pool_apply_roundtrip/python"].apply(twice, (counter[0],))

    add("pool_apply_roundtrip/python", roundtrip, 1, unit="us", procs=1)
    add("pool_imap_unordered_tiny/python",
        lambda: sum(pools["pool_imap_unordered_tiny/python"].imap_unordered(
            twice, range(n), chunksize=1)), n)

    for w in range(1, max(2, os.cpu_count() or 1) + 1):
        tasks = 200 * w
        name = "pool_map_cpu/python/%d" % w
        add(name, (lambda name=name, tasks=tasks:
                   pools[name].map(spin, range(tasks), chunksize=1)),
            tasks, procs=w, initializer=set_spin_rounds, initargs=(SPIN_ROUNDS,))
        cases.append(gbench_json.Case("pool_map_cpu/python_serial/%d" % w,
                          (lambda tasks=tasks: [spin(i) for i in range(tasks)]),
                          tasks))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100000, help="tiny tasks per call")
    ap.add_argument("--processes", type=int,
                    default=max(2, os.cpu_count() or 1), help="workers")
    ap.add_argument("--repetitions", type=int, default=1)
    ap.add_argument("--min_time", type=float, default=0.5,
                    help="seconds per repetition (at least one call)")
    ap.add_argument("--quick", action="store_true",
                    help="n=2000, min_time=0.01: the whole run in seconds")
    ap.add_argument("--filter", default="", help="substring of the names to run")
    args = ap.parse_args()
    if args.quick:
        args.n, args.min_time = min(args.n, 2000), 0.01
    if args.n < 1 or args.processes < 1 or args.repetitions < 1:
        ap.error("--n, --processes and --repetitions must be at least 1")

    rounds = calibrate_spin()
    ctx = context()
    rows = []
    for case in pool_cases(args, ctx):
        if args.filter in case.name:
            rows.extend(gbench_json.measure(case, args.min_time, args.repetitions))
    out = gbench_json.report(rows, {
        "start_method": ctx.get_start_method(),
        "processes": args.processes,
        "n": args.n,
        "spin_rounds": rounds,
    })
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
