#!/usr/bin/python3
"""report_test: bench/report/report.py in --quick mode on the real bench
binaries (this build's, passed as data: --bin-dir), three runs:

  A  the real suites.tsv plus a fake peer script printing Google Benchmark
     JSON: every case/impl that the goals table names and a present binary
     registers appears in report.md (its case table has the impl's row); a
     goal whose names no present binary has says "not measured"; every plot
     linked from report.md exists and parses as SVG, and the fixed plots
     (queue by size, latency, pool speed-up when pool_bench is there) are
     among them; absent suites give a line each.
  B  --compare=A: the case tables carry the change column with values.
  C  a suites file whose binary does not exist and whose peer's interpreter
     is missing (--python=/nonexistent): lines saying so, exit status 0.
"""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

SRC = os.path.join(os.environ["TEST_SRCDIR"], "mp")
REPORT = os.path.join(SRC, "bench", "report", "report.py")
BIN = os.path.join(SRC, "bench")
TMP = os.environ["TEST_TMPDIR"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def run(*args):
    cmd = ["/usr/bin/python3", REPORT, "--quick", f"--bin-dir={BIN}",
           f"--workspace={SRC}"] + list(args)
    print("+", " ".join(cmd), flush=True)
    # matplotlib wants a writable config folder; the sandbox's HOME is not.
    env = dict(os.environ, MPLCONFIGDIR=os.path.join(TMP, "mpl"))
    return subprocess.run(cmd, env=env, timeout=240)


def read_tsv(path):
    rows = []
    for line in open(path):
        line = line.rstrip("\n")
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def sections(md):
    """{case: text of its '### `case`' section}."""
    out = {}
    for m in re.finditer(r"^### `([^`]+)`\n(.*?)(?=^### |^## |\Z)", md,
                         re.M | re.S):
        out[m.group(1)] = m.group(2)
    return out


def registered(binary):
    r = subprocess.run([binary, "--benchmark_list_tests=true"],
                       capture_output=True, text=True, check=True)
    return [re.sub(r"/(manual_time|real_time)$", "", l.strip())
            for l in r.stdout.splitlines() if l.strip()]


def main():
    # A fake peer: one case the goals table does not use, in the schema.
    peer = os.path.join(TMP, "fake_peer.py")
    with open(peer, "w") as f:
        f.write("import json, sys\n"
                "assert '--quick' in sys.argv\n"
                "print(json.dumps({'context': {}, 'benchmarks': [\n"
                "  {'name': 'fake_case/python', 'run_name': 'fake_case/python',"
                " 'run_type': 'iteration', 'iterations': 1, 'real_time': 2.0,"
                " 'cpu_time': 2.0, 'time_unit': 'ms', 'items_per_second': 5e5},"
                "\n  {'name': 'fake_case/mp', 'run_name': 'fake_case/mp',"
                " 'run_type': 'iteration', 'iterations': 1, 'real_time': 1.0,"
                " 'cpu_time': 1.0, 'time_unit': 'ms', 'items_per_second': 1e6}"
                "]}))\n")
    suites = os.path.join(TMP, "suites_a.tsv")
    with open(os.path.join(SRC, "bench", "report", "suites.tsv")) as f:
        real = f.read()
    with open(suites, "w") as f:
        f.write(real + f"script\tfake_peer\t{peer}\t{{python}} {{script}} "
                "{mode}\ta fake peer (the test's)\n")

    out_a = os.path.join(TMP, "a")
    r = run(f"--out={out_a}", f"--suites={suites}")
    check(r.returncode == 0, f"run A exit status {r.returncode}")
    md = open(os.path.join(out_a, "report.md")).read()
    check("QUICK" in md, "a quick report says so")
    secs = sections(md)

    present = {}
    for kind, name, _, how, _ in read_tsv(
            os.path.join(SRC, "bench", "report", "suites.tsv")):
        if kind != "binary":
            continue
        path = os.path.join(BIN, name)
        if os.access(path, os.X_OK) and "{mpirun}" not in how:
            present[name] = registered(path)
            check(f"`{name}` (" in md and "): ran" in md, f"{name} ran")
        elif not os.access(path, os.X_OK):
            check(re.search(rf"`{name}` \(.*\): no such binary", md)
                  is not None, f"a line for the absent binary {name}")
    check("queue_bench" in present and "sync_bench" in present,
          "queue_bench and sync_bench are in the test's data")
    names = {n for ns in present.values() for n in ns}
    # What the peer scripts that ran printed counts as measured too.
    for kind, name, _, _, _ in read_tsv(
            os.path.join(SRC, "bench", "report", "suites.tsv")):
        raw = os.path.join(out_a, "raw", f"{name}.json")
        if kind == "script" and os.path.exists(raw):
            check(f"`{name}` (" in md, f"a line for the peer {name}")
            for b in json.load(open(raw)).get("benchmarks", []):
                names.add(re.sub(r"/(manual_time|real_time)$", "",
                                 b.get("run_name", b["name"])))

    goals = read_tsv(os.path.join(SRC, "bench", "report", "goals.tsv"))
    check(len(goals) > 10, "the goals table is read")
    for issue, kind, subject, reference, _, limit, text in goals:
        verdict_row = [l for l in md.splitlines()
                       if l.startswith(f"| {issue} | {text}")]
        check(len(verdict_row) == 1, f"one verdict row for {text!r}")
        measured = True
        for full in [subject, reference] + ([limit] if limit != "-" else []):
            case, impl = full.split("/")[:2]
            rows = [n for n in names if n == full or n.startswith(full + "/")]
            if not rows:
                if full != limit:
                    measured = False
                continue
            for n in rows:
                parts = n.split("/")
                sec = case + ("/" + "/".join(parts[2:]) if len(parts) > 2
                              else "")
                check(sec in secs and f"| {impl} |" in secs[sec],
                      f"{n} has its row in report.md")
        if verdict_row:
            says = "not measured" in verdict_row[0]
            check(says == (not measured),
                  f"{text!r}: 'not measured' iff a name has no binary "
                  f"({verdict_row[0]})")

    check("fake_case" in secs and "| python |" in secs.get("fake_case", ""),
          "the peer script's rows are in the report")
    check("`fake_peer` (a fake peer (the test's)): ran" in md,
          "the peer script ran")

    linked = re.findall(r"\]\(plots/([^)]+\.svg)\)", md)
    check(len(linked) > 3, "plots are linked")
    expected = {"queue_by_size.svg", "latency.svg"}
    if "pool_bench" in present:
        expected.add("pool_speedup.svg")
    check(expected <= set(linked), f"the fixed plots {sorted(expected)} are "
          f"linked (got {sorted(set(linked))})")
    for name in set(linked):
        path = os.path.join(out_a, "plots", name)
        try:
            root = ET.parse(path).getroot()
            check(root.tag.endswith("svg"), f"{name} is an SVG document")
        except (OSError, ET.ParseError) as e:
            check(False, f"{name} parses as XML: {e}")
    raws = os.listdir(os.path.join(out_a, "raw"))
    check("queue_bench.json" in raws, "raw JSON kept")
    for raw in raws:
        json.load(open(os.path.join(out_a, "raw", raw)))
    check("p99.9" in md, "latency percentiles reach the page")

    out_b = os.path.join(TMP, "b")
    r = run(f"--out={out_b}", f"--suites={suites}", f"--compare={out_a}")
    check(r.returncode == 0, f"run B exit status {r.returncode}")
    md_b = open(os.path.join(out_b, "report.md")).read()
    secs_b = sections(md_b)
    q = secs_b.get("queue_spsc_64B", "")
    check("| change |" in q, "the change column is in queue_spsc_64B's table")
    check(re.search(r"\| mp_ring \|.*\| [+-]\d+\.\d%", q) is not None,
          "mp_ring's row has a change value")

    suites_c = os.path.join(TMP, "suites_c.tsv")
    with open(suites_c, "w") as f:
        f.write("binary\tno_such_bench\t//bench:no_such_bench\t{bin}\t"
                "missing\n"
                f"script\tfake_peer\t{peer}\t{{python}} {{script}} {{mode}}\t"
                "peer without python\n")
    out_c = os.path.join(TMP, "c")
    r = run(f"--out={out_c}", f"--suites={suites_c}",
            "--python=/nonexistent/python3")
    check(r.returncode == 0, f"run C exit status {r.returncode}")
    md_c = open(os.path.join(out_c, "report.md")).read()
    check("`no_such_bench` (missing): no such binary" in md_c,
          "a missing binary gives a line")
    check("/nonexistent/python3 not found; peer not run" in md_c,
          "a missing interpreter gives a line")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
