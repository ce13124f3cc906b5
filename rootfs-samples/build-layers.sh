#!/usr/bin/env bash
# Packs the layer fixtures in rootfs-samples/layers/ into OCI layer tars (gzip) in $1
# (default rootfs-samples/build/layers): reproducible, owned by root, every mtime 2000-01-01.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
out=${1:-$script_dir/build/layers}
mkdir -p "$out"
for layer in base change; do
    tmp=$(mktemp "$out/.$layer.XXXXXX")
    tar --create --directory "$script_dir/layers/$layer" --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime='2000-01-01 00:00:00Z' --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        . | gzip -n > "$tmp"
    mv "$tmp" "$out/$layer.tar.gz"
done
echo "layer fixtures ready in $out"
