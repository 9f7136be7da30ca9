#!/usr/bin/env bash
# Builds the HAProxy releases in $AUTOHEAL_HAPROXY_SRC (2.8, 3.0, 3.2, 3.4) once each and caches every
# binary outside the checkout, keyed by its tarball's sha256, so a rebuild happens only when a tarball
# changes. Prints one "VERSION BINARY" line per release on stdout (progress goes to stderr).
#   AUTOHEAL_HAPROXY_SRC    where the tarballs and SHA256SUMS are (default: haproxy-src/ in the shared
#                           directory that scripts/shared-dir.sh names)
#   AUTOHEAL_HAPROXY_CACHE  where binaries are kept (default /var/cache/autoheal-haproxy)
# With no sources it prints one line on stderr saying so and exits 0 with nothing on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

src=${AUTOHEAL_HAPROXY_SRC:-$(scripts/shared-dir.sh)/haproxy-src}
cache=${AUTOHEAL_HAPROXY_CACHE:-/var/cache/autoheal-haproxy}

shopt -s nullglob
tarballs=("$src"/haproxy-*.tar.gz)
if [[ ! -f $src/SHA256SUMS || ${#tarballs[@]} -eq 0 ]]; then
  echo "HAProxy version matrix: did not run (no release tarballs and SHA256SUMS in $src)" >&2
  exit 0
fi

# The Prometheus exporter is plain C in the tree (no library): the end-to-end stack's stats frontend
# serves it. The runtime API, master CLI and `haproxy -c` need nothing more.
build_flags=(TARGET=linux-glibc USE_PROMEX=1)
mkdir -p "$cache"
for tarball in "${tarballs[@]}"; do
  name=$(basename "$tarball" .tar.gz)            # haproxy-3.2.0
  version=${name#haproxy-}
  sha=$(sha256sum "$tarball" | cut -d' ' -f1)
  # The published checksum must match: a damaged tarball is an error, not a silent rebuild.
  if ! grep -q "^$sha  $name.tar.gz\$" "$src/SHA256SUMS"; then
    echo "haproxy-matrix: $tarball does not match $src/SHA256SUMS" >&2
    exit 1
  fi
  # The key also holds the flags, so changing them rebuilds instead of reusing a different binary.
  dir=$cache/$version-$sha-$(printf '%s ' "${build_flags[@]}" | sha256sum | cut -c1-8)
  if [[ ! -x $dir/haproxy ]]; then
    echo "haproxy-matrix: building $version (once; cached in $dir)" >&2
    work=$(mktemp -d)
    tar xzf "$tarball" -C "$work"
    make -C "$work/$name" -j2 "${build_flags[@]}" >"$work/build.log" 2>&1 || {
      tail -n 30 "$work/build.log" >&2
      echo "haproxy-matrix: build of $version failed" >&2
      exit 1
    }
    mkdir -p "$dir"
    # Copy then rename so a concurrent reader never sees half a binary.
    cp "$work/$name/haproxy" "$dir/haproxy.tmp" && mv "$dir/haproxy.tmp" "$dir/haproxy"
    rm -rf "$work"
  fi
  echo "$version $dir/haproxy"
done
