#!/usr/bin/env bash
# TCP throughput, side by side in one run:
#   raw     two network namespaces on a bridge with veth pairs, made here with ip(8): the ceiling
#   skiff   two lesson10-veth-bridge containers on a bridge of their own, by name
#   loop    the host's loopback, for scale
#   published: from the host to a container's published port on 127.0.0.1, through Skiff's DNAT,
#   and through Docker's userland proxy (a dockerd of the script's own, when dockerd is installed)
# Each pair runs the probe's sink and blast for SECONDS (default 5). Prints Gbit/s and the ratio
# skiff/raw (the target is at least 0.95). Run as root from the repository after `make samples`
# and `swift build -c release`. Everything it makes is removed on exit, also on Ctrl-C.
set -euo pipefail
seconds=${1:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
probe=$root/rootfs-samples/build/busybox/probe
bin=$(cd "$root" && swift build -c release --show-bin-path)
lesson=$bin/lesson10-veth-bridge
[ -x "$probe" ] || { echo "no probe: run make samples" >&2; exit 1; }
[ -x "$lesson" ] || { echo "no $lesson: run swift build -c release" >&2; exit 1; }

docker_root=""
cleanup() {
    if [ -n "$docker_root" ] && [ -f "$docker_root/docker.pid" ]; then
        docker -H "unix://$docker_root/docker.sock" rm -f sink > /dev/null 2>&1 || true
        docker -H "unix://$docker_root/docker.sock" rmi skiff-bench:sink > /dev/null 2>&1 || true
        kill "$(cat "$docker_root/docker.pid")" 2>/dev/null || true
        for _ in $(seq 100); do [ -e "$docker_root/docker.pid" ] || break; sleep 0.1; done
        rm -rf "$docker_root"
        ip link del docker0 2>/dev/null || true
    fi
    ip link del skb-a 2>/dev/null || true
    ip link del skb-b 2>/dev/null || true
    ip netns del skbench-a 2>/dev/null || true
    ip netns del skbench-b 2>/dev/null || true
    ip link del skbench-br 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

gbits() { sed -n 's/.* = \([0-9.]*\) Gbit\/s/\1/p'; }

# raw veth + bridge between two namespaces
ip link add skbench-br type bridge
ip addr add 10.216.0.1/24 dev skbench-br
ip link set skbench-br up
for side in a b; do
    ip netns add skbench-$side
    ip link add skb-$side type veth peer name eth0 netns skbench-$side
    ip link set skb-$side master skbench-br up
    ip -n skbench-$side link set lo up
    ip -n skbench-$side link set eth0 up
done
ip -n skbench-a addr add 10.216.0.2/24 dev eth0
ip -n skbench-b addr add 10.216.0.3/24 dev eth0
ip netns exec skbench-a "$probe" sink 7100 > /dev/null &
sleep 0.3
raw=$(ip netns exec skbench-b "$probe" blast 10.216.0.2:7100 "$seconds" | gbits)
wait

# skiff containers on their own bridge
network=(--bridge skbench0 --subnet 10.217.0.0/24)
log=$(mktemp)
"$lesson" --name sink "${network[@]}" -- /probe sink 7100 > "$log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
skiff=$("$lesson" --name blaster "${network[@]}" -- /probe blast sink:7100 "$seconds" | gbits)
wait
rm -f "$log"

# loopback
"$probe" sink 7101 > /dev/null &
sleep 0.3
loop=$("$probe" blast 127.0.0.1:7101 "$seconds" | gbits)
wait

# host -> published port on 127.0.0.1: Skiff's DNAT
log=$(mktemp)
"$lesson" --name psink "${network[@]}" -p 18500:7100 -- /probe sink 7100 > "$log" 2>&1 &
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
published=$("$probe" blast 127.0.0.1:18500 "$seconds" | gbits)
wait
rm -f "$log"

# host -> published port on 127.0.0.1: Docker's userland proxy (docker-proxy)
proxy="n/a"
if command -v dockerd > /dev/null; then
    docker_root=$(mktemp -d)
    echo '{"iptables": false, "storage-driver": "vfs"}' > "$docker_root/daemon.json"
    dockerd --data-root "$docker_root/data" --exec-root "$docker_root/exec" --pidfile "$docker_root/docker.pid" \
        -H "unix://$docker_root/docker.sock" --config-file "$docker_root/daemon.json" > "$docker_root/dockerd.log" 2>&1 &
    docker=(docker -H "unix://$docker_root/docker.sock")
    for _ in $(seq 100); do "${docker[@]}" version > /dev/null 2>&1 && break; sleep 0.1; done
    tar -C "$root/rootfs-samples/build/busybox" -c . | "${docker[@]}" import - skiff-bench:sink > /dev/null
    "${docker[@]}" run -d --name sink -p 127.0.0.1:18501:7100 skiff-bench:sink /probe sink 7100 > /dev/null
    for _ in $(seq 100); do "${docker[@]}" logs sink 2>/dev/null | grep -q listening && break; sleep 0.05; done
    proxy=$("$probe" blast 127.0.0.1:18501 "$seconds" | gbits)
fi

printf '%-45s %8s Gbit/s\n' "raw veth + bridge (two netns)" "$raw" "skiff containers over their bridge" "$skiff" "host loopback" "$loop" \
    "host -> published port, skiff (DNAT)" "$published" "host -> published port, docker-proxy" "$proxy"
awk -v s="$skiff" -v r="$raw" 'BEGIN { printf "skiff / raw = %.2f (target >= 0.95)\n", s / r }'
[ "$proxy" = "n/a" ] || awk -v s="$published" -v d="$proxy" 'BEGIN { printf "published port: skiff / docker-proxy = %.2f (target > 1)\n", s / d }'
