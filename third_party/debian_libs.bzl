"""Debian's -dev packages as Bazel repositories, with upstream-looking labels.

Headers live in /usr/include (a built-in include directory of the compiler),
so each target only carries the link options of its shared libraries.
"""

def _lib(name, libs, deps = []):
    return """
cc_library(
    name = "{name}",
    linkopts = [{linkopts}],
    deps = [{deps}],
    visibility = ["//visibility:public"],
)
""".format(
        name = name,
        linkopts = ", ".join(['"-l%s"' % l for l in libs]),
        deps = ", ".join(['"%s"' % d for d in deps]),
    )

# package -> [(target, [libraries], [deps])]
_ABSL = {
    "absl/base": [("base", ["absl_base", "absl_raw_logging_internal"], []), ("core_headers", [], [])],
    "absl/status": [
        ("status", ["absl_status", "absl_cord", "absl_strings"], []),
        ("statusor", ["absl_statusor"], [":status"]),
    ],
    "absl/strings": [
        ("strings", ["absl_strings", "absl_int128", "absl_throw_delegate"], []),
        ("str_format", ["absl_str_format_internal"], [":strings"]),
    ],
    "absl/time": [("time", ["absl_time", "absl_time_zone"], [])],
    "absl/synchronization": [("synchronization", ["absl_synchronization"], [])],
    "absl/container": [("flat_hash_map", ["absl_raw_hash_set", "absl_hash", "absl_city", "absl_low_level_hash"], [])],
    "absl/types": [("span", [], []), ("optional", [], [])],
    "absl/functional": [("function_ref", [], []), ("any_invocable", [], [])],
    "absl/cleanup": [("cleanup", [], [])],
    "absl/debugging": [("failure_signal_handler", ["absl_failure_signal_handler"], [])],
}

def _debian_absl_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "")
    for package, targets in _ABSL.items():
        ctx.file(package + "/BUILD.bazel", "".join([_lib(n, l, d) for n, l, d in targets]))

debian_absl = repository_rule(implementation = _debian_absl_impl, local = True)

def _debian_googletest_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "".join([
        _lib("gtest", ["gmock", "gtest", "pthread"]),
        _lib("gtest_main", ["gmock", "gtest_main", "gtest", "pthread"]),
    ]))

debian_googletest = repository_rule(implementation = _debian_googletest_impl, local = True)

def _debian_benchmark_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "".join([
        _lib("benchmark", ["benchmark", "pthread"]),
        _lib("benchmark_main", ["benchmark_main", "benchmark", "pthread"]),
    ]))

debian_benchmark = repository_rule(implementation = _debian_benchmark_impl, local = True)

def _debian_zmq_impl(ctx):
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", _lib("zmq", ["zmq"]))

# ZeroMQ (libzmq3-dev): a benchmark peer, bench/ only. zmq.h is in /usr/include.
debian_zmq = repository_rule(implementation = _debian_zmq_impl, local = True)

def _words(text):
    return [w for w in text.strip().replace("\n", " ").split(" ") if w]

def _debian_mpi_impl(ctx):
    """OpenMPI (libopenmpi-dev). Its headers live outside the compiler's
    default paths, so they are linked into the repository and exported with
    `includes`; the paths come from `mpicxx --showme`, as OpenMPI documents."""
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    incdirs = []
    libdirs = []
    libs = []
    mpicxx = ctx.which("mpicxx")
    if mpicxx:
        incdirs = _words(ctx.execute([mpicxx, "--showme:incdirs"]).stdout)
        libdirs = _words(ctx.execute([mpicxx, "--showme:libdirs"]).stdout)
        libs = _words(ctx.execute([mpicxx, "--showme:libs"]).stdout)
    includes = []
    for i, d in enumerate(incdirs):
        ctx.symlink(d, "include%d" % i)
        includes.append('"include%d"' % i)
    linkopts = ['"-L%s"' % d for d in libdirs] + ['"-Wl,-rpath,%s"' % d for d in libdirs] + ['"-l%s"' % l for l in libs]
    ctx.file("BUILD.bazel", """
cc_library(
    name = "mpi",
    hdrs = glob(["include*/**/*.h"]),
    includes = [{includes}],
    linkopts = [{linkopts}],
    visibility = ["//visibility:public"],
)
""".format(includes = ", ".join(includes), linkopts = ", ".join(linkopts)))

# OpenMPI 4.1 from Debian, for the Pool's MPI backend (mp/pool/mpi).
debian_mpi = repository_rule(implementation = _debian_mpi_impl, local = True)
