#!/usr/bin/env bash
# Installs mp the way tools/install does (tools/install_files.sh over the
# //tools:mp_dist tree) into a prefix under TEST_TMPDIR, then builds
# consumer.cc against it outside Bazel, twice: with g++ and pkg-config, and
# with CMake's pkg_check_modules; runs both and checks what they print.
# Arguments: extra compiler and linker flags (the sanitizer the library was
# built with, so that the program links against it).
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

runfiles=${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}
scratch=${TEST_TMPDIR:?}
export TMPDIR=$scratch  # compiler temporaries too stay in the test's dir
export CXXFLAGS="$*"
export LDFLAGS="$*"
prefix=$scratch/prefix

# Twice: the second run must leave the same files.
"$runfiles/tools/install_files.sh" "$runfiles/tools/mp_dist" "$prefix"
listing=$(cd "$prefix" && find . -type f | sort | xargs sha256sum)
"$runfiles/tools/install_files.sh" "$runfiles/tools/mp_dist" "$prefix" >/dev/null
[ "$listing" = "$(cd "$prefix" && find . -type f | sort | xargs sha256sum)" ] ||
  fail "a second install changed the prefix"
for h in mp/core/process.h mp/sync/lock.h mp/sync/internal/robust_list.h \
         mp/queue/queue.h mp/queue/internal/ring.h; do
  [ -f "$prefix/include/$h" ] || fail "$h not installed"
done

# mpctl is installed and runs on its own.
[ -x "$prefix/bin/mpctl" ] || fail "bin/mpctl not installed"
"$prefix/bin/mpctl" --help | grep -q "usage: mpctl" || fail "bin/mpctl --help"
mkdir -p "$scratch/empty-shm"
"$prefix/bin/mpctl" ls --dir "$scratch/empty-shm" >/dev/null || fail "bin/mpctl ls on an empty directory"
echo "ok: bin/mpctl runs"

check_output() {  # NAME OUTPUT
  local expected="producer: sent 1000 messages
consumer: received 1000 messages, sum 500500
main: exit codes 0 0"
  # The children print in either order; main's line comes last.
  if [ "$(sort <<<"$2")" != "$(sort <<<"$expected")" ] ||
     [ "$(tail -n 1 <<<"$2")" != "main: exit codes 0 0" ]; then
    fail "$1 printed:
$2"
  fi
  echo "ok: $1"
}

# Each public header compiles on its own with the .pc's flags.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cflags=$(pkg-config --cflags mp)
for h in $(cd "$prefix/include" && find mp -name '*.h' ! -path '*/internal/*' | sort); do
  echo "#include \"$h\"" >"$scratch/one.cc"
  # shellcheck disable=SC2086
  g++ $cflags -Wall -Wextra -Werror -fsyntax-only "$scratch/one.cc" ||
    fail "$h does not compile alone with pkg-config's flags"
done
echo "ok: every public header compiles alone"

# 1. Plain g++ and pkg-config, as the README shows.
mkdir -p "$scratch/gxx"
# shellcheck disable=SC2086,SC2046
g++ -Wall -Wextra -Werror $CXXFLAGS -o "$scratch/gxx/consumer" \
  "$runfiles/tests/install/consumer.cc" $(pkg-config --cflags --libs mp) $LDFLAGS
check_output "g++ with pkg-config" "$("$scratch/gxx/consumer" 2>&1)"

# 2. CMake, pkg_check_modules, the prefix through CMAKE_PREFIX_PATH only.
unset PKG_CONFIG_PATH
mkdir -p "$scratch/cmake-src"
cp "$runfiles/tests/install/CMakeLists.txt" "$runfiles/tests/install/consumer.cc" \
  "$scratch/cmake-src/"
cmake -S "$scratch/cmake-src" -B "$scratch/cmake-build" \
  -DCMAKE_PREFIX_PATH="$prefix" >"$scratch/cmake.log" 2>&1 ||
  { cat "$scratch/cmake.log"; fail "cmake configure"; }
cmake --build "$scratch/cmake-build" >>"$scratch/cmake.log" 2>&1 ||
  { cat "$scratch/cmake.log"; fail "cmake build"; }
check_output "cmake with pkg_check_modules" "$("$scratch/cmake-build/consumer" 2>&1)"
