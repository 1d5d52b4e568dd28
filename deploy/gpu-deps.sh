#!/usr/bin/env bash
# gpu-deps.sh: fetch the few Debian libraries common/ needs (jansson, OpenSSL) plus pkgconf,
# HERE (where the Debian archive is reachable), and unpack them into a relocatable prefix that
# travels to the GPU machine, which has CUDA, CMake and PyTorch but none of our packages.
#
# Why so: the GPU machine cannot reach any archive; shipping a handful of .debs unpacked with
# dpkg -x keeps the build there to one cmake line. The prefix is made relocatable: libraries
# flattened from lib/x86_64-linux-gnu into lib/ (no multiarch assumptions on the target), the
# multiarch OpenSSL headers merged into include/openssl, .pc files rewritten to
# prefix=${pcfiledir}/../.., symlinks replaced by files, static archives and docs dropped.
# bin/pkg-config is a wrapper that runs the unpacked pkgconf and sees ONLY this prefix's .pc
# files, so a system jansson/OpenSSL cannot leak in. The libraries need glibc >= 2.34.
# Tested by hand and by docs/gpu.md's "verify here" commands (configure with /usr ignored).
#
# usage: deploy/gpu-deps.sh [DEST]      (default DEST: .gpu-deps, ignored by git)
# then on the GPU machine (DEST carried along), see docs/gpu.md:
#   cmake -S . -B build-gpu $(deploy/gpu-deps.sh --cmake-args) && cmake --build build-gpu -j
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--cmake-args" ]]; then
  d="$PWD/${2:-.gpu-deps}"
  echo "-DSHOAL_CUDA=ON -DSHOAL_MPI=OFF -DSHOAL_RPC=OFF -DSHOAL_BLAS=OFF" \
       "-DCMAKE_PREFIX_PATH=$d/usr -DOPENSSL_ROOT_DIR=$d/usr" \
       "-DPKG_CONFIG_EXECUTABLE=$d/bin/pkg-config"
  exit 0
fi

DEST="${1:-.gpu-deps}"
PKGS=(libjansson4 libjansson-dev libssl3 libssl-dev pkgconf-bin libpkgconf3)
mkdir -p "$DEST/debs"
DEST="$(cd "$DEST" && pwd)"
echo "== downloading ${PKGS[*]} into $DEST/debs"
(cd "$DEST/debs" && rm -f ./*.deb && apt-get download "${PKGS[@]}" 2>&1 | grep -v "unsandboxed" || true)
for p in "${PKGS[@]}"; do
  ls "$DEST/debs/${p}_"*.deb >/dev/null 2>&1 || { echo "gpu-deps: $p was not downloaded" >&2; exit 1; }
done

echo "== unpacking into $DEST/usr"
stage="$DEST/stage"
rm -rf "$stage" "$DEST/usr" "$DEST/bin"
mkdir -p "$stage"
for deb in "$DEST"/debs/*.deb; do dpkg -x "$deb" "$stage"; done
mkdir -p "$DEST/usr/lib/pkgconfig" "$DEST/usr/include" "$DEST/usr/bin" "$DEST/bin"
arch=x86_64-linux-gnu
# libraries: dereference symlinks (cp -L) so the tree is plain files, flatten multiarch
for f in "$stage/usr/lib/$arch"/lib*.so*; do cp -L "$f" "$DEST/usr/lib/"; done
cp "$stage/usr/lib/$arch/pkgconfig"/*.pc "$DEST/usr/lib/pkgconfig/"
cp -r "$stage/usr/include/." "$DEST/usr/include/"
if [[ -d "$DEST/usr/include/$arch/openssl" ]]; then
  cp "$DEST/usr/include/$arch/openssl/"* "$DEST/usr/include/openssl/"
  rm -rf "${DEST:?}/usr/include/$arch"
fi
cp -L "$stage/usr/bin/pkgconf" "$DEST/usr/bin/pkgconf"
for pc in "$DEST"/usr/lib/pkgconfig/*.pc; do
  sed -i -e 's|^prefix=.*|prefix=${pcfiledir}/../..|' -e "s|/lib/$arch|/lib|g" "$pc"
done
cat > "$DEST/bin/pkg-config" <<'WRAP'
#!/bin/sh
# pkg-config for the .gpu-deps prefix: the unpacked pkgconf, seeing only this prefix's .pc files.
here=$(cd "$(dirname "$0")/.." && pwd)
PKG_CONFIG_LIBDIR="$here/usr/lib/pkgconfig" PKG_CONFIG_PATH= \
LD_LIBRARY_PATH="$here/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  exec "$here/usr/bin/pkgconf" "$@"
WRAP
chmod +x "$DEST/bin/pkg-config"
rm -rf "$stage"

"$DEST/bin/pkg-config" --modversion jansson >/dev/null
echo "== $DEST ready ($(du -sh "$DEST/usr" "$DEST/bin" | awk '{s=s" "$1} END {print s}'));" \
     "jansson $("$DEST/bin/pkg-config" --modversion jansson)," \
     "openssl $("$DEST/bin/pkg-config" --modversion openssl)"
echo "configure:  cmake -S . -B build-gpu $(bash "$0" --cmake-args "$(basename "$DEST")")"
