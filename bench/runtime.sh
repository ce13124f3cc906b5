#!/usr/bin/env bash
# Container start-to-exit time of skiff-runtime and runc (and crun when installed) on the same
# bundle, side by side in one hyperfine run: `run` of a container whose process is `/probe true`,
# with the runtime's own default spec (new pid, net, ipc, uts and mount namespaces, seccomp,
# capabilities, masked paths). Run as root after `make samples`. skiff-runtime is built here as
# it should be installed: release, with the Swift runtime and Foundation linked statically
# (`--static-swift-stdlib`), so that a container start pays no dynamic loading (DESIGN §8).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
(cd "$root" && swift build -c release --static-swift-stdlib --scratch-path .build-static --product skiff-runtime > /dev/null)
skiff=$(cd "$root" && swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/skiff-runtime
command -v hyperfine > /dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One bundle per runtime, each from that runtime's own `spec`, pointed at the busybox sample.
make_bundle() {
    local runtime=$1 directory=$work/$2
    mkdir -p "$directory"
    (cd "$directory" && "$runtime" spec)
    python3 - "$directory/config.json" "$root/rootfs-samples/build/busybox" <<'PY'
import json, sys
path, rootfs = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["root"] = {"path": rootfs, "readonly": True}
spec["process"]["args"] = ["/probe", "true"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"))
PY
}
make_bundle "$skiff" skiff
commands=("$skiff --root $work/skiff-state run --bundle $work/skiff bench")
names=(skiff-runtime)
for other in runc crun; do
    if command -v "$other" > /dev/null; then
        make_bundle "$other" "$other"
        commands+=("$other --root $work/$other-state run --bundle $work/$other bench")
        names+=("$other")
    fi
done
arguments=()
for index in "${!commands[@]}"; do arguments+=(--command-name "${names[$index]}" "${commands[$index]}"); done
hyperfine --warmup 3 --runs "${RUNS:-30}" -N "${arguments[@]}"
