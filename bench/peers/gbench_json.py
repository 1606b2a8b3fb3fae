"""Google Benchmark's JSON for the CPython peers (python_pool.py,
python_manager.py): the schema of `--benchmark_format=json`, so the report
merges these rows with the C++ binaries' output.

A Case runs `run()` (which does `items` items) until `min_time` seconds have
passed, at least once, after one untimed warm-up call; each repetition is a
row, and with more than one repetition the mean and median rows follow, as
Google Benchmark's aggregates. cpu_time is this process's only.
"""

import datetime
import os
import platform
import socket
import statistics
import sys
import time


class Case:
    """One benchmark: `run()` does `items` items; timed until min_time."""

    def __init__(self, name, run, items, unit="ms", setup=None, teardown=None):
        self.name, self.run, self.items, self.unit = name, run, items, unit
        self.setup, self.teardown = setup, teardown


UNIT = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}


def measure(case, min_time, repetitions):
    rows = []
    if case.setup:
        case.setup()
    try:
        case.run()  # warm-up: workers started, pages touched
        for rep in range(repetitions):
            iters, real, cpu = 0, 0.0, 0.0
            while real < min_time or iters == 0:
                c0, t0 = time.process_time(), time.perf_counter()
                case.run()
                real += time.perf_counter() - t0
                cpu += time.process_time() - c0
                iters += 1
            rows.append({
                "name": case.name,
                "family_index": 0,
                "per_family_instance_index": 0,
                "run_name": case.name,
                "run_type": "iteration",
                "repetitions": repetitions,
                "repetition_index": rep,
                "threads": 1,
                "iterations": iters,
                "real_time": real / iters * UNIT[case.unit],
                "cpu_time": cpu / iters * UNIT[case.unit],
                "time_unit": case.unit,
                "items_per_second": case.items * iters / real,
            })
    finally:
        if case.teardown:
            case.teardown()
    if repetitions > 1:
        for agg, fn in (("mean", statistics.mean), ("median", statistics.median)):
            row = dict(rows[0])
            row.update({
                "name": case.name + "_" + agg,
                "run_type": "aggregate",
                "aggregate_name": agg,
                "iterations": len(rows),
                "real_time": fn(r["real_time"] for r in rows),
                "cpu_time": fn(r["cpu_time"] for r in rows),
                "items_per_second": fn(r["items_per_second"] for r in rows),
            })
            del row["repetition_index"]
            rows.append(row)
    return rows


def report(rows, extra_context):
    """The whole JSON document: Google Benchmark's context plus `extra`."""
    ctx = {
        "date": datetime.datetime.now().astimezone().isoformat(),
        "host_name": socket.gethostname(),
        "executable": sys.executable + " " + os.path.abspath(sys.argv[0]),
        "num_cpus": os.cpu_count(),
        "mhz_per_cpu": 0,
        "cpu_scaling_enabled": False,
        "caches": [],
        "load_avg": list(os.getloadavg()),
        "library_build_type": "release",
        "python_version": platform.python_version(),
    }
    ctx.update(extra_context)
    return {"context": ctx, "benchmarks": rows}
