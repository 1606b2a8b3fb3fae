"""mp_dist: mp's static library, headers and pkg-config template as one tree.

The tree is what tools/install copies under a prefix (through
tools/install_files.sh), and what //tests/install installs into a scratch
prefix to build a program against, so the two cannot drift apart:

    include/mp/...           every header of `deps` and of the mp libraries
                             they depend on (mp/sync/internal/robust_list.h,
                             mp/queue/internal/ring.h: public headers include
                             them), paths kept
    lib/libmp.a              the object code of those mp libraries
    lib/pkgconfig/mp.pc.in   `template`, @PREFIX@ still to be replaced
    bin/<name>               each of `binaries` (mpctl), by its own name

Libraries from other repositories (Abseil) are left out: mp.pc names them in
its Requires line.
"""

def _mp_dist_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    here = ctx.label.workspace_name

    headers = depset(transitive = [
        d[CcInfo].compilation_context.headers
        for d in ctx.attr.deps
    ]).to_list()
    headers = [h for h in headers if h.owner.workspace_name == here]

    linker_inputs = depset(transitive = [
        d[CcInfo].linking_context.linker_inputs
        for d in ctx.attr.deps
    ]).to_list()
    objects = {}
    for li in linker_inputs:
        if li.owner.workspace_name != here:
            continue
        for lib in li.libraries:
            # Position-independent objects where the configuration builds
            # them (a user's executable is PIE by default on Debian).
            for o in (lib.pic_objects or lib.objects):
                objects[o.path] = o
    if not objects:
        fail("mp_dist: no object files found in %s" % ctx.attr.deps)

    cc_toolchain = ctx.attr._cc_toolchain[cc_common.CcToolchainInfo]
    args = ctx.actions.args()
    args.add(out.path)
    args.add(cc_toolchain.ar_executable)
    args.add(ctx.file.template)
    for h in headers:
        args.add(h.path)
        args.add(h.short_path)
    binaries = [b[DefaultInfo].files_to_run.executable for b in ctx.attr.binaries]
    for b in binaries:
        args.add(b.path)
        args.add(b.basename)
    args.add("--")
    args.add_all(sorted(objects.keys()))

    ctx.actions.run_shell(
        outputs = [out],
        inputs = depset(
            [ctx.file.template] + headers + objects.values() + binaries,
            transitive = [cc_toolchain.all_files],
        ),
        arguments = [args],
        command = """
set -eu
out="$1"; ar="$2"; template="$3"; shift 3
mkdir -p "$out/include" "$out/lib/pkgconfig" "$out/bin"
cp "$template" "$out/lib/pkgconfig/mp.pc.in"
while [ "$1" != "--" ]; do
  case "$1" in
    *.h) mkdir -p "$out/include/$(dirname "$2")"; cp "$1" "$out/include/$2" ;;
    *) cp "$1" "$out/bin/$2"; chmod 0755 "$out/bin/$2" ;;
  esac
  shift 2
done
shift
"$ar" qcsD "$out/lib/libmp.a" "$@"
""",
        mnemonic = "MpDist",
        progress_message = "Staging mp's library and headers in %s" % out.short_path,
    )
    return [DefaultInfo(
        files = depset([out]),
        runfiles = ctx.runfiles(files = [out]),
    )]

mp_dist = rule(
    implementation = _mp_dist_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "binaries": attr.label_list(cfg = "target"),
        "template": attr.label(allow_single_file = [".in"], mandatory = True),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
)
