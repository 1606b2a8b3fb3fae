#!/usr/bin/env bash
# tools/install_files.sh TREE PREFIX: copies the tree //tools:mp_dist built
# (include/mp/..., lib/libmp.a, lib/pkgconfig/mp.pc.in, bin/mpctl) under
# PREFIX and
# writes PREFIX/lib/pkgconfig/mp.pc with PREFIX in it. Shared by
# tools/install and //tests/install:install_test.
#
# Idempotent: PREFIX/include/mp is replaced as a whole (a header removed from
# mp disappears), libmp.a, mp.pc and bin/mpctl are overwritten; nothing else under
# PREFIX is touched. Prints what it installed.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 TREE PREFIX" >&2
  exit 2
fi
tree=$1
prefix=$(realpath -m -- "$2")
for f in include/mp lib/libmp.a lib/pkgconfig/mp.pc.in bin/mpctl; do
  if [ ! -e "$tree/$f" ]; then
    echo "install_files.sh: $tree has no $f: not an mp_dist tree" >&2
    exit 1
  fi
done
case "$prefix" in
  *[[:space:]\|\&\\]*)
    echo "install_files.sh: prefix '$prefix' has a character mp.pc cannot hold" >&2
    exit 1
    ;;
esac

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/bin"
rm -rf "$prefix/include/mp"
# -L: the tree may be a runfiles tree of symlinks; install real files.
cp -RL "$tree/include/mp" "$prefix/include/mp"
chmod -R u+w,go+rX "$prefix/include/mp"
install -m 0644 "$tree/lib/libmp.a" "$prefix/lib/libmp.a"
sed "s|@PREFIX@|$prefix|" "$tree/lib/pkgconfig/mp.pc.in" >"$prefix/lib/pkgconfig/mp.pc"
chmod 0644 "$prefix/lib/pkgconfig/mp.pc"
install -m 0755 "$tree/bin/mpctl" "$prefix/bin/mpctl"

headers=$(find "$prefix/include/mp" -type f -name '*.h' | wc -l)
objects=$(ar t "$prefix/lib/libmp.a" | wc -l)
echo "installed under $prefix:"
echo "  include/mp/          $headers headers ($(cd "$prefix/include" && find mp -mindepth 1 -maxdepth 1 -type d | sort | paste -sd' '))"
echo "  lib/libmp.a          $objects objects"
echo "  bin/mpctl            see and clean up mp's segments: $prefix/bin/mpctl ls"
echo "  lib/pkgconfig/mp.pc  use: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs mp"
