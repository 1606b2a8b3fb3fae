#!/usr/bin/python3
"""The benchmark report: runs every benchmark suite, peers side by side, and
writes a page a person reads, with plots and a verdict per goal.

  bazel run //bench:report                       # full run, -c opt
  bazel run //bench:report -- --quick            # each case once, briefly
  bazel run //bench:report -- --compare=bench/reports/<older>
  bazel run //bench:report -- --readme           # and the README's headline

What it runs comes from suites.tsv (beside this file; each suite's command
line from its `run` column, so MPI suites start under mpirun), the goals it
judges from goals.tsv (each with the issue it came from): one list each. A suite whose binary target or script does not
exist, or a peer whose interpreter is missing, gives a line in the report, not
a failure; a suite that exists but fails is reported and makes the exit
status 1 after the report is written.

Binaries are built with `bazel build --config=opt` (`-c opt --copt=-O2`) in
the workspace (BUILD_WORKSPACE_DIRECTORY under `bazel run`), unless
--bin-dir names a folder of already built ones (the test uses fastbuild
binaries that way). Each runs with `--benchmark_repetitions=N
--benchmark_enable_random_interleaving=true`, its JSON written by
`--benchmark_out` (the same JSON as --benchmark_format=json) while its
console lines drive the progress line. Peer scripts run under
/usr/bin/python3 (never a bare python3: a pyenv interpreter would not see
Debian's packages), printing Google Benchmark's JSON on stdout.

The report directory (default bench/reports/<date>-<host>/ in the
workspace, --out to change) holds report.md, plots/*.svg (matplotlib) and
raw/<suite>.json, the raw JSON of every run, which --compare reads back. The
change column comes from Google Benchmark's own compare.py library (Debian's
libbenchmark-tools, /usr/share/benchmark/gbench): its relative change of
real time per repetition, the median of those, and its Mann-Whitney U test's
p-value where both runs have enough repetitions.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GBENCH_DIR = "/usr/share/benchmark"
AGGREGATE_SUFFIXES = ("_mean", "_median", "_stddev", "_cv")
PERCENTILES = ("p50_ns", "p90_ns", "p99_ns", "p99.9_ns")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- the two tables ----------------------------------------------------------


def read_tsv(path, ncols):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != ncols:
                sys.exit(f"{path}:{n}: {len(cols)} tab-separated columns, "
                         f"expected {ncols}: {line!r}")
            rows.append(cols)
    return rows


def read_suites(path):
    out = []
    for kind, name, what, run, note in read_tsv(path, 5):
        if kind not in ("binary", "script"):
            sys.exit(f"{path}: unknown kind {kind!r} for {name}")
        out.append({"kind": kind, "name": name, "what": what, "run": run,
                    "note": note})
    return out


def read_goals(path):
    out = []
    for issue, kind, subject, reference, threshold, limit, text in read_tsv(
            path, 7):
        if kind not in ("ratio", "speedup"):
            sys.exit(f"{path}: unknown goal kind {kind!r}")
        out.append({"issue": issue, "kind": kind, "subject": subject,
                    "reference": reference, "threshold": float(threshold),
                    "limit": None if limit == "-" else limit, "text": text})
    return out


# ---- running -----------------------------------------------------------------


class Progress:
    """n of m, elapsed, and an estimate of what is left (from the mean time
    per unit so far)."""

    def __init__(self, total):
        self.total = max(total, 1)
        self.done = 0
        self.t0 = time.monotonic()

    def step(self, what):
        self.done += 1
        el = time.monotonic() - self.t0
        left = el / self.done * max(self.total - self.done, 0)
        log(f"[{min(self.done, self.total)}/{self.total}] {what}  "
            f"elapsed {fmt_dur(el)}, about {fmt_dur(left)} left")


def fmt_dur(s):
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def bazel_targets(workspace, names):
    """Which of //bench:<name> exist, by bazel query."""
    r = subprocess.run(["bazel", "query", "kind('cc_binary', //bench:*)",
                        "--output=label"], cwd=workspace,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bazel query failed:\n" + r.stderr[-2000:])
    have = {l.split(":")[-1] for l in r.stdout.split()}
    return [n for n in names if n in have]


def build(workspace, names):
    targets = [f"//bench:{n}" for n in names]
    log(f"building {' '.join(targets)} with --config=opt (-c opt)")
    r = subprocess.run(["bazel", "build", "--config=opt"] + targets,
                       cwd=workspace)
    if r.returncode != 0:
        sys.exit("bazel build --config=opt failed")
    r = subprocess.run(["bazel", "info", "--config=opt", "bazel-bin"],
                       cwd=workspace, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bazel info bazel-bin failed:\n" + r.stderr[-2000:])
    return os.path.join(r.stdout.strip(), "bench")


MPIRUN = ["mpirun", "--oversubscribe", "--bind-to", "none", "--mca",
          "mpi_yield_when_idle", "1"]


def command(suite, path, args, reps):
    """The suite's `run` template as a command line: {bin} and {script} are
    the path, {python} the interpreter, {mpirun} OpenMPI's launcher with the
    options a small shared machine needs, {mode} --quick or
    --repetitions=N, {quick} --quick or nothing."""
    mpirun = MPIRUN + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    subst = {"{bin}": [path], "{script}": [path], "{python}": [args.python],
             "{mpirun}": mpirun,
             "{mode}": ["--quick"] if args.quick else [f"--repetitions={reps}"],
             "{quick}": ["--quick"] if args.quick else []}
    out = []
    for w in suite["run"].split():
        out += subst.get(w, [w])
    return out


def list_tests(cmd):
    r = subprocess.run(cmd + ["--benchmark_list_tests=true"],
                       capture_output=True, text=True)
    return [l.strip() for l in r.stdout.splitlines() if l.strip()]


def run_binary(cmd, raw_path, reps, min_time, progress, name, timeout):
    args = cmd + [f"--benchmark_out={raw_path}", "--benchmark_out_format=json",
                  f"--benchmark_repetitions={reps}",
                  "--benchmark_enable_random_interleaving=true",
                  f"--benchmark_min_time={min_time}"]
    tests = {strip_suffix(t) for t in list_tests(cmd)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    watchdog = Watchdog(proc, timeout, name)
    tail, buf, fd = [], b"", proc.stdout.fileno()
    try:
        while True:
            # A child the suite forked may outlive it (its parent aborted)
            # and hold the pipe open: once the suite itself has exited, stop
            # at the first quiet second instead of waiting for EOF.
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace") + "\n"
                tail = (tail + [line])[-30:]
                first = line.split(" ")[0] if line.strip() else ""
                base = strip_suffix(first)
                if base in tests:  # one repetition of one benchmark finished
                    progress.step(f"{name}: {base}")
        rc = proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
        try:  # whatever of its group is left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if watchdog.fired:
        tail.append(watchdog.note)
    return rc, "".join(tail)


class Watchdog:
    """Ends a suite that runs past its time: first says what every process of
    its group is doing (state, kernel wait channel, command line: which
    benchmark hung), then kills the group (the suite's forked children too)."""

    def __init__(self, proc, timeout, name):
        import threading
        self.proc, self.name, self.fired, self.note = proc, name, False, ""
        self.timer = threading.Timer(timeout, self.fire, args=(timeout,))
        self.timer.daemon = True
        self.timer.start()

    def cancel(self):
        self.timer.cancel()

    def fire(self, timeout):
        self.fired = True
        lines = [f"{self.name}: still running after {timeout:.0f} s; its "
                 "processes:"]
        for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
            stat = read(f"/proc/{pid}/stat")
            try:
                fields = stat[stat.rindex(")") + 2:].split()
                pgid = int(fields[2])
            except (ValueError, IndexError):
                continue
            if pgid != self.proc.pid:
                continue
            cmd = read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
            wchan = read(f"/proc/{pid}/wchan").strip()
            lines.append(f"  pid {pid} state {fields[0]} wchan {wchan or '-'}"
                         f": {cmd[:200]}")
        self.note = "\n".join(lines) + "\n"
        log(self.note)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_script(cmd, raw_path, progress, name, timeout):
    with open(raw_path, "w") as out, open(raw_path + ".err", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True,
                                start_new_session=True)
        watchdog = Watchdog(proc, timeout, name)
        rc = proc.wait()
        watchdog.cancel()
        err.seek(0)
        tail = err.read()[-3000:] + watchdog.note
    os.remove(raw_path + ".err")
    progress.step(name)
    return rc, tail


# ---- results -----------------------------------------------------------------


def parse_name(run_name):
    """'case/impl[/args...][/manual_time]' -> (case, impl, args)."""
    n = re.sub(r"/(manual_time|real_time|process_time)$", "", run_name)
    parts = n.split("/")
    case = parts[0]
    impl = parts[1] if len(parts) > 1 else ""
    args = "/".join(parts[2:])
    return case, impl, args


TIME_NS = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def load_results(raw_files, order):
    """{full name 'case/impl[/args]': entry} from every suite's JSON, each
    entry holding its repetitions' values; in suite order, and within a suite
    in the order the binary registers its benchmarks (`order`: suite ->
    names), not the random order of the interleaved run."""
    res = {}
    for suite, path in raw_files:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue
            if b.get("error_occurred"):
                continue
            run_name = b.get("run_name", b["name"])
            case, impl, args = parse_name(run_name)
            key = "/".join(x for x in (case, impl, args) if x)
            e = res.setdefault(key, {
                "case": case, "impl": impl, "args": args, "suite": suite,
                "run_name": run_name, "time_ns": [], "rate": [],
                "counters": {}})
            e["time_ns"].append(
                float(b["real_time"]) * TIME_NS.get(b.get("time_unit", "ns"), 1))
            if "items_per_second" in b:
                e["rate"].append(float(b["items_per_second"]))
            for p in PERCENTILES:
                if p in b:
                    e["counters"].setdefault(p, []).append(float(b[p]))
    rank = {}
    for si_, (suite, _) in enumerate(raw_files):
        for i, n in enumerate(order.get(suite, [])):
            rank[(suite, n)] = (si_, i)
    keys = sorted(res, key=lambda k: rank.get(
        (res[k]["suite"], strip_suffix(res[k]["run_name"])),
        (len(raw_files), 0)))
    return {k: res[k] for k in keys}


def strip_suffix(name):
    return re.sub(r"/(manual_time|real_time|process_time)$", "", name)


def stats(values):
    v = sorted(values)
    if not v:
        return None
    if len(v) >= 4:
        q = statistics.quantiles(v, n=4)
        iqr = (q[0], q[2])
    else:
        iqr = (v[0], v[-1])
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "iqr": iqr, "n": len(v)}


def speed(e, other=None):
    """(median speed, higher is better) of entry e, by items/s when e (and
    `other`, if given) has it, else 1/time."""
    if e["rate"] and (other is None or other["rate"]):
        return statistics.median(e["rate"])
    return 1e9 / statistics.median(e["time_ns"])


def is_mp(impl):
    return impl == "mp" or impl.startswith("mp_")


# ---- formatting --------------------------------------------------------------


def si(x, unit=""):
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g} {p}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def fmt_time(ns):
    for div, u in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if ns >= div:
            return f"{ns / div:.3g} {u}"
    return f"{ns:.3g} ns"


def fmt_ratio(r):
    return f"{r:.3g}x"


# ---- machine -----------------------------------------------------------------


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine(workspace, build_note):
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    vm = bool(flags and "hypervisor" in flags.group(1).split())
    virt = ""
    if shutil.which("systemd-detect-virt"):
        r = subprocess.run(["systemd-detect-virt"], capture_output=True,
                           text=True)
        virt = r.stdout.strip()
    gov = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").strip()
    cxx = ""
    if shutil.which("g++"):
        cxx = subprocess.run(["g++", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    commit = ""
    # git may be absent (a fresh machine with only what tools/setup installs)
    # or the workspace not a checkout: the commit is then not reported.
    r = None
    if shutil.which("git"):
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                           cwd=workspace, capture_output=True, text=True)
    if r is not None and r.returncode == 0:
        commit = r.stdout.strip()
        # Changes to the sources only: the reports (this run's own output,
        # written by then when they are tracked) and the README's tables
        # (--readme) are not what was measured.
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":!bench/reports", ":!README.md"],
                           cwd=workspace, capture_output=True, text=True)
        if d.stdout.strip():
            commit += " (with uncommitted changes)"
    skew = []
    if vm:
        skew.append("a virtual machine (the CPU reports a hypervisor"
                    + (f": {virt}" if virt and virt != "none" else "")
                    + "): vCPUs share physical cores with other guests, so "
                    "timings drift between and within runs")
    if gov and gov != "performance":
        skew.append(f"the CPU frequency governor is `{gov}`, not `performance`")
    elif not gov:
        skew.append("no cpufreq governor is visible (typical of a VM): the "
                    "clock speed is the host's business")
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(), "kernel": platform.release(),
        "os": read("/etc/debian_version").strip(), "compiler": cxx,
        "build": build_note, "commit": commit, "skew": skew,
        "load": os.getloadavg(), "host": socket.gethostname()}


# ---- goals -------------------------------------------------------------------


def workers_of(args):
    """The worker (or rank) count in a benchmark's argument: '2' or
    'ranks:2' -> 2; None when there is none."""
    m = re.search(r"(\d+)$", args or "")
    return int(m.group(1)) if m else None


def find(res, name):
    """Entries named `name` exactly, else every case/impl/<args> entry."""
    if name in res:
        return [res[name]]
    return [e for e in res.values()
            if f'{e["case"]}/{e["impl"]}' == name and e["args"]]


def judge(goal, res):
    """(verdict, detail) for one goal."""
    if goal["kind"] == "speedup":
        # Speed-up at W workers: the subject's rate (items/s) over serial's at
        # the same W, so the two need not run the same number of tasks.
        subj = {workers_of(e["args"]): e for e in find(res, goal["subject"])}
        ref = {workers_of(e["args"]): e for e in find(res, goal["reference"])}
        ws = sorted(w for w in set(subj) & set(ref) if w)
        if not ws:
            return "not measured", (f"no `{goal['subject']}/W` beside "
                                    f"`{goal['reference']}/W` in this run")
        # W workers on fewer cores cannot run W times as fast: the goal is
        # the threshold times the workers the machine can run at once.
        cores = os.cpu_count() or 1
        parts, ok = [], True
        for w in ws:
            sp = speed(subj[w], ref[w]) / speed(ref[w], subj[w])
            need = goal["threshold"] * min(w, cores)
            ok = ok and sp >= need
            capped = f", {cores} cores" if w > cores else ""
            parts.append(f"W={w}: {sp:.2f}x (goal {need:.2g}x{capped})")
        return ("met" if ok else "not met"), "; ".join(parts)
    ss, rs = find(res, goal["subject"]), find(res, goal["reference"])
    missing = [n for n, e in ((goal["subject"], ss), (goal["reference"], rs))
               if not e]
    if missing:
        return "not measured", "no " + ", ".join(f"`{m}`" for m in missing) + \
            " in this run"
    # Where a name has several arguments (ranks:1..3), the subject's best
    # against the reference's best.
    s = max(ss, key=lambda e: speed(e))
    r = max(rs, key=lambda e: speed(e))
    ratio = speed(s, r) / speed(r, s)
    detail = f"{fmt_ratio(ratio)} (goal {fmt_ratio(goal['threshold'])})"
    for e, group in ((s, ss), (r, rs)):
        if len(group) > 1:
            detail += f"; best of {len(group)}: `{e['case']}/{e['impl']}/{e['args']}`"
    verdict = "met" if ratio >= goal["threshold"] else "not met"
    lims = find(res, goal["limit"]) if goal["limit"] else []
    lim = max(lims, key=lambda e: speed(e)) if lims else None
    if goal["limit"] and lim is None:
        detail += f"; limit `{goal['limit']}` not measured"
    elif lim is not None:
        lim_ratio = speed(lim, r) / speed(r, lim)
        frac = speed(s, lim) / speed(lim, s)
        if verdict == "not met" and lim_ratio < goal["threshold"]:
            verdict = "capped by the machine"
            detail += (f"; the machine's limit `{goal['limit']}` itself is "
                       f"only {fmt_ratio(lim_ratio)} the reference here; mp "
                       f"is at {frac:.2f} of the limit")
        else:
            detail += f"; mp at {frac:.2f} of the limit `{goal['limit']}`"
    return verdict, detail


# ---- --compare ---------------------------------------------------------------


def compare(old_dir, raw_files):
    """{run_name: (median relative change of real time, p-value or None)}
    from gbench's get_difference_report, suite by suite."""
    sys.path.insert(0, GBENCH_DIR)
    try:
        from gbench import report as gb  # noqa: E402
    except ImportError as e:
        return None, (f"Google Benchmark's compare library is missing "
                      f"({GBENCH_DIR}/gbench: {e}); tools/setup installs "
                      "libbenchmark-tools")
    changes = {}
    notes = []
    for suite, path in raw_files:
        old = os.path.join(old_dir, "raw", os.path.basename(path))
        if not os.path.exists(old):
            notes.append(f"`{suite}`: not in the older report")
            continue
        try:
            with open(old) as f:
                j1 = json.load(f)
            with open(path) as f:
                j2 = json.load(f)
        except (OSError, ValueError) as e:
            notes.append(f"`{suite}`: unreadable JSON ({e})")
            continue
        for j in (j1, j2):
            # The repetitions only, not their aggregates; and only those
            # that measured something: a benchmark that stopped with an
            # error (SkipWithError) has no times, and gbench's geomean
            # reads cpu_time and real_time of every entry.
            j["benchmarks"] = [
                b for b in j.get("benchmarks", [])
                if b.get("run_type", "iteration") == "iteration"
                and not b.get("error_occurred")
                and "real_time" in b and "cpu_time" in b]
        try:
            diffs = gb.get_difference_report(j1, j2, utest=True)
        except (KeyError, ValueError, ZeroDivisionError) as e:
            notes.append(f"`{suite}`: gbench could not compare it ({e!r})")
            continue
        for d in diffs:
            if "measurements" not in d or d.get("name") == "OVERALL_GEOMEAN":
                continue
            ch = statistics.median(m["time"] for m in d["measurements"])
            p = d.get("utest", {}).get("time_pvalue")
            changes[d["name"]] = (ch, p)
    return changes, "; ".join(notes)


# ---- plots -------------------------------------------------------------------


def plots(res, out_dir):
    # matplotlib caches fonts under its config folder; where HOME is not
    # writable (a sandbox) give it a scratch one rather than let it stall.
    cfg = os.environ.get("MPLCONFIGDIR") or os.path.expanduser(
        "~/.config/matplotlib")
    if not os.access(os.path.dirname(cfg.rstrip("/")) or ".", os.W_OK):
        import tempfile
        os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="mpl-")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = os.path.join(out_dir, "plots")
    os.makedirs(pdir, exist_ok=True)
    made = []

    def save(fig, name, title):
        path = os.path.join(pdir, name)
        fig.tight_layout()
        fig.savefig(path, format="svg")
        plt.close(fig)
        made.append((name, title))

    # Throughput (or round trips) by implementation, one plot per case.
    for case, entries in cases(res).items():
        if len(entries) < 2:
            continue
        labels = [e["impl"] + (f"/{e['args']}" if e["args"] else "")
                  for e in entries]
        vals, lo, hi = [], [], []
        rate = all(e["rate"] for e in entries)
        for e in entries:
            xs = e["rate"] if rate else [1e9 / t for t in e["time_ns"]]
            st = stats(xs)
            vals.append(st["median"])
            lo.append(st["median"] - st["min"])
            hi.append(st["max"] - st["median"])
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(entries) + 1.4))
        colors = ["tab:red" if is_mp(e["impl"]) else "tab:blue"
                  for e in entries]
        ax.barh(labels, vals, xerr=[lo, hi], color=colors)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("items per second (median; bars: min-max)" if rate
                      else "iterations per second (median; bars: min-max)")
        ax.set_title(case)
        save(fig, f"case_{case.replace('/', '_')}.svg",
             f"{case}: throughput by implementation")

    # Queue throughput by message size.
    size_re = re.compile(r"^queue_spsc_(\d+)(B|KiB)$")
    series = {}
    for e in res.values():
        m = size_re.match(e["case"])
        if m and e["rate"]:
            size = int(m.group(1)) * (1024 if m.group(2) == "KiB" else 1)
            series.setdefault(e["impl"], []).append(
                (size, statistics.median(e["rate"])))
    if series:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for impl, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=impl, linewidth=2.5 if is_mp(impl) else 1.2)
        ax.set_xscale("log", base=2)
        sizes = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{x // 1024} KiB" if x >= 1024 else f"{x} B"
                            for x in sizes])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel("messages per second (median)")
        ax.set_title("queue_spsc: throughput by message size")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
        save(fig, "queue_by_size.svg", "queue throughput by message size")

    # Pool speed-up by worker count against the ideal line.
    cpu = {}
    for e in res.values():
        w = workers_of(e["args"])
        if e["case"] == "pool_map_cpu" and w:
            cpu.setdefault(e["impl"], {})[w] = e
    serial_of = {"mp": "serial", "python": "python_serial",
                 "mpi_pool": "serial"}
    curves = {}
    for impl, ser in serial_of.items():
        if impl in cpu and ser in cpu:
            ws = sorted(set(cpu[impl]) & set(cpu[ser]))
            if ws:  # rates (items/s), so the task counts need not match
                curves[impl] = [(w, speed(cpu[impl][w], cpu[ser][w]) /
                                 speed(cpu[ser][w], cpu[impl][w]))
                                for w in ws]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        wmax = max(w for c in curves.values() for w, _ in c)
        ax.plot([1, wmax], [1, wmax], "k--", label="ideal")
        for impl, pts in sorted(curves.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=impl)
        ax.set_xlabel("workers")
        ax.set_ylabel("speed-up over serial (median times)")
        ax.set_title("pool_map_cpu: speed-up by worker count")
        ax.legend()
        ax.grid(True, alpha=0.3)
        save(fig, "pool_speedup.svg", "pool speed-up by worker count")

    # Latency percentiles of the ping-pong and round-trip cases.
    lat = [e for e in res.values() if e["counters"]]
    if lat:
        lat.sort(key=lambda e: (e["case"], e["impl"]))
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(lat) + 1.6))
        labels = [f"{e['case']}/{e['impl']}" for e in lat]
        markers = {"p50_ns": "o", "p90_ns": "s", "p99_ns": "^",
                   "p99.9_ns": "x"}
        for p in PERCENTILES:
            xs = [statistics.median(e["counters"][p])
                  if p in e["counters"] else math.nan for e in lat]
            ax.plot(xs, range(len(lat)), linestyle="none",
                    marker=markers[p], label=p[:-3])
        ax.set_yticks(range(len(lat)))
        ax.set_yticklabels(labels, fontsize="small")
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("round trip (ns), median over repetitions")
        ax.set_title("latency percentiles")
        ax.legend(fontsize="small")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        save(fig, "latency.svg", "latency percentiles (p50, p90, p99, p99.9)")
    return made


def cases(res):
    out = {}
    for e in res.values():
        key = e["case"] + (f"/{e['args']}" if e["args"] else "")
        out.setdefault(key, []).append(e)
    return out


# ---- the page ----------------------------------------------------------------


def write_report(out_dir, m, suite_lines, goals, res, made, changes,
                 compare_note, args, started, wall):
    L = []
    quick = " (QUICK: each case once, briefly; not a measurement)" \
        if args.quick else ""
    L.append(f"# mp benchmark report{quick}")
    L.append("")
    L.append(f"{started:%Y-%m-%d %H:%M} UTC on `{m['host']}`, commit "
             f"{m['commit'] or 'unknown'}; the run took {fmt_dur(wall)}.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append(f"- CPU: {m['cpu']}, {m['cores']} logical cores")
    L.append(f"- kernel {m['kernel']}" + (f", Debian {m['os']}" if m['os']
                                          else ""))
    L.append(f"- compiler: {m['compiler'] or 'unknown'}")
    L.append(f"- build: {m['build']}")
    L.append(f"- load average at the start: "
             + " ".join(f"{x:.2f}" for x in m["load"]))
    for s in m["skew"]:
        L.append(f"- timing may be skewed: {s}")
    L.append(f"- repetitions per case: {1 if args.quick else args.repetitions}"
             f" (interleaved at random), min time {args.min_time_used} s")
    L.append("")
    L.append("## Suites")
    L.append("")
    for s in suite_lines:
        L.append(f"- {s}")
    L.append("")

    L.append("## Verdicts")
    L.append("")
    L.append("Medians, ratios within this run (speed, higher is better: "
             "items/s where both report it, else 1/time).")
    L.append("")
    L.append("| issue | goal | verdict | measured |")
    L.append("|---|---|---|---|")
    for g in goals:
        v, d = judge(g, res)
        L.append(f"| {g['issue']} | {g['text']} (`{g['subject']}` vs "
                 f"`{g['reference']}`) | **{v}** | {d} |")
    L.append("")

    L.append("## Headline")
    L.append("")
    L += headline(res)
    L.append("")

    if made:
        L.append("## Plots")
        L.append("")
        for name, title in made:
            L.append(f"- [{title}](plots/{name})")
        L.append("")
        for name, title in made:
            if not name.startswith("case_"):
                L.append(f"![{title}](plots/{name})")
                L.append("")

    L.append("## Cases")
    L.append("")
    if args.compare:
        L.append(f"Change: against `{args.compare}`, the median relative "
                 "change of real time per iteration over repetitions "
                 "(negative is faster), from Google Benchmark's compare.py "
                 "library, with its U-test p-value where both runs have "
                 "enough repetitions." + (f" {compare_note}" if compare_note
                                          else ""))
        L.append("")
    for case, entries in cases(res).items():
        mps = [e for e in entries if is_mp(e["impl"])]
        mp = mps[0] if mps else None
        rate = all(e["rate"] for e in entries)
        L.append(f"### `{case}`")
        L.append("")
        head = "| impl | median | min-max | IQR | mp's speed against it |"
        sep = "|---|---|---|---|---|"
        if args.compare:
            head += " change |"
            sep += "---|"
        if any(e["counters"] for e in entries):
            head += " p50 / p90 / p99 / p99.9 |"
            sep += "---|"
        L.append(head)
        L.append(sep)
        for e in entries:
            xs = e["rate"] if rate else e["time_ns"]
            st = stats(xs)
            f = (lambda x: si(x, "/s")) if rate else fmt_time
            row = (f"| {e['impl']} | {f(st['median'])} | {f(st['min'])} - "
                   f"{f(st['max'])} | {f(st['iqr'][0])} - {f(st['iqr'][1])} | "
                   + (fmt_ratio(speed(mp, e) / speed(e, mp)) if mp else "-")
                   + " |")
            if args.compare:
                ch = changes.get(e["run_name"]) if changes else None
                if ch is None:
                    row += " - |"
                else:
                    row += f" {ch[0] * 100:+.1f}%" + (
                        f" (p={ch[1]:.3f})" if ch[1] is not None else "") + " |"
            if any(x["counters"] for x in entries):
                c = e["counters"]
                row += (" " + " / ".join(
                    fmt_time(statistics.median(c[p])) for p in PERCENTILES)
                        + " |") if c else " - |"
            L.append(row)
        L.append("")

    L.append("## Raw data")
    L.append("")
    L.append("Google Benchmark JSON, one file per suite: "
             + ", ".join(f"[{n}](raw/{n})" for n in sorted(
                 os.listdir(os.path.join(out_dir, "raw")))) + ".")
    L.append("")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(L))


def headline(res):
    """The headline table: per case, mp's median and each peer's with mp's
    speed against it."""
    L = ["| case | mp (median) | peers in the same run (mp's speed against "
         "each) |", "|---|---|---|"]
    for case, entries in cases(res).items():
        mps = [e for e in entries if is_mp(e["impl"])]
        if not mps:
            continue
        mp = mps[0]
        peers = [f"{e['impl']} {headline_value(e)} "
                 f"({fmt_ratio(speed(mp, e) / speed(e, mp))})"
                 for e in entries if e is not mp]
        L.append(f"| `{case}` | {mp['impl']} {headline_value(mp)} | "
                 + ("; ".join(peers) or "-") + " |")
    return L


README_BEGIN = "<!-- report:headline begin -->"
README_END = "<!-- report:headline end -->"


def update_readme(ws, out_dir, m, goals, res, made, args, started):
    """Replaces the README's text between the report:headline markers with
    this report's headline table, its machine, its verdict count and links."""
    path = os.path.join(ws, "README.md")
    text = read(path)
    if README_BEGIN not in text or README_END not in text:
        log(f"--readme: no {README_BEGIN} ... {README_END} in {path}")
        return False
    rel = os.path.relpath(out_dir, ws)
    verdicts = [judge(g, res)[0] for g in goals]
    count = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    L = [README_BEGIN, ""]
    L.append(f"From [{rel}/report.md]({rel}/report.md)"
             + (" (QUICK run: each case once, not a measurement)"
                if args.quick else "")
             + f", {started:%Y-%m-%d}, commit {m['commit'] or 'unknown'}: "
             f"{m['cpu']}, {m['cores']} logical cores, kernel {m['kernel']}, "
             f"{m['compiler']}, {m['build']}"
             + (f"; {m['skew'][0]}" if m["skew"] else "") + ". Medians of "
             f"{1 if args.quick else args.repetitions} interleaved "
             "repetitions; each ratio is mp's speed against the peer in the "
             "same run. Goals: " + ", ".join(f"{n} {v}" for v, n in
                                              count.items())
             + f" (the report's Verdicts). Plots: "
             + ", ".join(f"[{t}]({rel}/plots/{n})" for n, t in made
                         if not n.startswith("case_")) + ".")
    L.append("")
    L += headline(res)
    L += ["", README_END]
    a = text.index(README_BEGIN)
    b = text.index(README_END) + len(README_END)
    with open(path, "w") as f:
        f.write(text[:a] + "\n".join(L) + text[b:])
    log(f"--readme: {path} updated")
    return True


def headline_value(e):
    if e["rate"]:
        return si(statistics.median(e["rate"]), "/s")
    return fmt_time(statistics.median(e["time_ns"]))


# ---- main --------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="report directory (default "
                    "bench/reports/<date>-<host>/ in the workspace)")
    ap.add_argument("--quick", action="store_true",
                    help="each case once, briefly: checks the report is made")
    ap.add_argument("--compare", help="an older report directory: adds a "
                    "change column")
    ap.add_argument("--readme", action="store_true", help="put this report's "
                    "headline table into the workspace's README.md (between "
                    "its report:headline markers)")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=None,
                    help="--benchmark_min_time in seconds (default 0.3; "
                    "quick: 0.001)")
    ap.add_argument("--suite-timeout", type=float, default=None,
                    help="seconds one suite may run before it is killed and "
                    "reported (default 1800; quick: 180)")
    ap.add_argument("--bin-dir", help="take the bench binaries from this "
                    "folder instead of building them")
    ap.add_argument("--workspace", default=os.environ.get(
        "BUILD_WORKSPACE_DIRECTORY", os.getcwd()))
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="the interpreter for the peer scripts")
    ap.add_argument("--suites", default=os.path.join(HERE, "suites.tsv"))
    ap.add_argument("--goals", default=os.path.join(HERE, "goals.tsv"))
    args = ap.parse_args()
    if args.repetitions < 1:
        sys.exit("--repetitions must be at least 1")
    reps = 1 if args.quick else args.repetitions
    args.min_time_used = args.min_time if args.min_time is not None else (
        0.001 if args.quick else 0.3)
    if args.suite_timeout is None:
        args.suite_timeout = 180.0 if args.quick else 1800.0
    ws = os.path.abspath(args.workspace)
    if args.compare:
        args.compare = os.path.abspath(os.path.join(ws, args.compare))
        if not os.path.isdir(os.path.join(args.compare, "raw")):
            sys.exit(f"--compare: {args.compare} holds no raw/ folder of an "
                     "earlier report")

    suites = read_suites(args.suites)
    goals = read_goals(args.goals)
    started = datetime.datetime.now(datetime.timezone.utc)
    out = args.out or os.path.join(
        ws, "bench", "reports",
        f"{started:%Y-%m-%d}-{socket.gethostname()}")
    out = os.path.abspath(os.path.join(ws, out))
    os.makedirs(os.path.join(out, "raw"), exist_ok=True)
    for old in os.listdir(os.path.join(out, "raw")):
        os.remove(os.path.join(out, "raw", old))

    binaries = [s["name"] for s in suites if s["kind"] == "binary"]
    if args.bin_dir:
        bin_dir = os.path.abspath(args.bin_dir)
        present = [n for n in binaries
                   if os.access(os.path.join(bin_dir, n), os.X_OK)]
        build_note = (f"prebuilt binaries from `{bin_dir}` (--bin-dir; build "
                      "mode as they were built, not necessarily -c opt)")
    else:
        present = bazel_targets(ws, binaries)
        bin_dir = build(ws, present) if present else ""
        build_note = "`bazel build --config=opt` (-c opt --copt=-O2)"

    # What runs, and the lines for what does not.
    plan, lines = [], {}
    for s in suites:
        if "{mpirun}" in s["run"] and not shutil.which("mpirun"):
            lines[s["name"]] = (f"`{s['name']}` ({s['note']}): mpirun not "
                                "found (tools/setup installs openmpi-bin); "
                                "not run")
        elif s["kind"] == "binary":
            if s["name"] in present:
                cmd = command(s, os.path.join(bin_dir, s["name"]), args, reps)
                n = len(list_tests(cmd)) * reps
                plan.append((s, cmd, n))
            else:
                lines[s["name"]] = (f"`{s['name']}` ({s['note']}): no such "
                                    f"binary ({s['what']}) in this tree; not "
                                    "run")
        else:
            script = os.path.join(ws, s["what"])
            if not os.path.exists(script):
                lines[s["name"]] = (f"`{s['name']}` ({s['note']}): "
                                    f"{s['what']} is not in this tree; not run")
            elif not os.access(args.python, os.X_OK):
                lines[s["name"]] = (f"`{s['name']}` ({s['note']}): "
                                    f"{args.python} not found; peer not run")
            else:
                plan.append((s, command(s, script, args, reps), 1))

    progress = Progress(sum(n for _, _, n in plan))
    t0 = time.monotonic()
    raw_files, failed, order = [], [], {}
    for s, cmd, _ in plan:
        raw = os.path.join(out, "raw", f"{s['name']}.json")
        log(f"running {s['name']}: {' '.join(cmd)}")
        if s["kind"] == "binary":
            order[s["name"]] = [strip_suffix(t) for t in list_tests(cmd)]
            rc, tail = run_binary(cmd, raw, reps, args.min_time_used,
                                  progress, s["name"], args.suite_timeout)
        else:
            rc, tail = run_script(cmd, raw, progress, s["name"],
                                  args.suite_timeout)
        if rc != 0:
            failed.append(s["name"])
            lines[s["name"]] = (f"`{s['name']}` ({s['note']}): FAILED (exit "
                                f"status {rc}"
                                + (f", killed after {args.suite_timeout:.0f} s"
                                   if "still running after" in tail else "")
                                + "); whatever JSON it finished is kept")
            log(f"{s['name']} failed (exit status {rc}):\n{tail}")
        else:
            lines[s["name"]] = f"`{s['name']}` ({s['note']}): ran"
        if os.path.exists(raw) and os.path.getsize(raw) > 0:
            raw_files.append((s["name"], raw))
        elif os.path.exists(raw):
            os.remove(raw)
    wall = time.monotonic() - t0

    res = load_results(raw_files, order)
    m = machine(ws, build_note)
    changes, compare_note = (compare(args.compare, raw_files)
                             if args.compare else (None, ""))
    if args.compare and changes is None:
        changes = {}
    made = plots(res, out)
    lines = [lines[s["name"]] for s in suites]
    write_report(out, m, lines, goals, res, made, changes, compare_note, args,
                 started, wall)
    if args.readme:
        update_readme(ws, out, m, goals, res, made, args, started)
    print(f"report: {os.path.join(out, 'report.md')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
