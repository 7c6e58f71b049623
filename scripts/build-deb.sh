#!/bin/sh
# Build the Debian package (debian/) with dpkg-buildpackage in a staged copy of the tree, so that
# nothing of the build lands in the checkout and an edited tree builds as it is.
#
# usage: scripts/build-deb.sh OUTDIR [--bump VERSION]
#   OUTDIR   receives clustermgr_<version>_<arch>.deb (and the -dbgsym, .buildinfo, .changes)
#   --bump   add a changelog entry VERSION to the staged copy first (a later version: an upgrade)
#
# Before building it checks that every pkg-config module of the Makefile's PKGS is provided by a
# package listed in debian/control's Build-Depends, naming the package to add when one is not;
# after building it runs lintian (when installed) and fails on errors.
set -eu

usage() { echo "usage: $0 OUTDIR [--bump VERSION]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
bump=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bump) [ $# -ge 2 ] || usage; bump=$2; shift 2 ;;
        *) usage ;;
    esac
done
src=$(cd "$(dirname "$0")/.." && pwd)

# 1. Build-Depends against the libraries the Makefile links.
deps=$(sed -n '/^Build-Depends:/,/^[A-Z][A-Za-z-]*:/p' "$src/debian/control" | sed '$d' |
    sed -e 's/^Build-Depends://' -e 's/#.*//' | tr ',' '\n' |
    sed -e 's/[[:space:]]//g' -e 's/[(\[<].*//' -e 's/:.*//' | grep -v '^$' || true)
missing=""
for m in $(make -s --no-print-directory -C "$src" print-pkgs); do
    pc=$(pkg-config --path "$m" 2>/dev/null) || {
        echo "build-deb: pkg-config module $m is not installed (scripts/deps.sh)" >&2; exit 1; }
    owner=$(dpkg -S "$pc" 2>/dev/null | head -n 1 | cut -d: -f1)
    if [ -z "$owner" ]; then
        echo "build-deb: $pc (module $m) belongs to no Debian package" >&2; exit 1
    fi
    echo "$deps" | grep -qx -- "$owner" || missing="$missing $owner (for $m)"
done
if [ -n "$missing" ]; then
    echo "build-deb: add to Build-Depends in debian/control:$missing" >&2
    exit 1
fi

# 2. The staged copy: tracked and new files, not what git ignores (build trees, run/).
stage="$out/stage"
rm -rf "$stage"
mkdir -p "$stage/clustermgr"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -co --exclude-standard | while IFS= read -r f; do
        [ -e "$f" ] && printf '%s\n' "$f"; done | tar -cf - -T -) | tar -xf - -C "$stage/clustermgr"
else
    (cd "$src" && tar --exclude='./build*' --exclude=./run --exclude=./bench/results -cf - .) |
        tar -xf - -C "$stage/clustermgr"
fi

# 3. A later changelog entry, for upgrade tests.
if [ -n "$bump" ]; then
    cl="$stage/clustermgr/debian/changelog"
    maint=$(sed -n 's/^ -- \(.*>\)  .*/\1/p' "$cl" | head -n 1)
    { printf 'clustermgr (%s) unstable; urgency=medium\n\n' "$bump"
      printf '  * Rebuild as %s.\n\n' "$bump"
      printf ' -- %s  %s\n\n' "$maint" "$(date -R)"
      cat "$cl"; } > "$cl.new"
    mv "$cl.new" "$cl"
fi

# 4. Build (binary packages only, unsigned).
(cd "$stage/clustermgr" && nice dpkg-buildpackage -b -us -uc -j2)
version=$(cd "$stage/clustermgr" && dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
for f in "$stage"/*.deb "$stage"/*.buildinfo "$stage"/*.changes; do
    [ -e "$f" ] && mv -f "$f" "$out/"
done
rm -rf "$stage"
deb="$out/clustermgr_${version}_${arch}.deb"
echo "build-deb: $deb"

# 5. lintian: errors fail the build, warnings are printed.
if command -v lintian >/dev/null 2>&1; then
    lintian --info --display-info "$deb" | tee "$out/lintian-$version.txt" || true
    if grep -q '^E:' "$out/lintian-$version.txt"; then
        echo "build-deb: lintian reports errors" >&2
        exit 1
    fi
else
    echo "build-deb: lintian is not installed (apt-get install lintian); not checked" >&2
fi
