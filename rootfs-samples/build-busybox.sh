#!/usr/bin/env bash
# Build Skiff's busybox sample root filesystem.
#
#   rootfs-samples/build-busybox.sh [TARGET]
#
# TARGET defaults to rootfs-samples/build/busybox in the repository. The result is a
# minimal rootfs: Debian's static busybox with one symlink per applet, a few /etc files,
# and /probe (rootfs-samples/probe/probe.c), which the tests run inside containers.
#
# The rootfs is built in a temporary sibling of TARGET and renamed into place only when
# complete, so an interrupted build never leaves a half-built rootfs at TARGET. The script
# does not need root and never mounts, chroots, unshares or touches the network.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$script_dir")
busybox=/bin/busybox
probe_src=$script_dir/probe/probe.c

die() {
    echo "build-busybox: $*" >&2
    exit 1
}

# --- preflight -------------------------------------------------------------------------

# Debian's busybox-static ships a statically linked /bin/busybox, which runs in a rootfs
# without any shared libraries. (The "busybox" package installs a dynamic one at the
# same path, so check the package, not just the file.)
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
    || [[ ! -x $busybox ]]; then
    die "$busybox from Debian package busybox-static is missing: apt-get install busybox-static"
fi
if command -v readelf >/dev/null && readelf -l "$busybox" | grep -q 'INTERP'; then
    die "$busybox is dynamically linked; install Debian package busybox-static"
fi
command -v gcc >/dev/null || die "gcc is missing (needed for the probe): apt-get install gcc libc6-dev"
[[ -f $probe_src ]] || die "probe source not found: $probe_src"

target=${1:-$repo_root/rootfs-samples/build/busybox}
target=${target%/}
[[ -n $target ]] || die "refusing to build into /"
parent=$(dirname "$target")
name=$(basename "$target")
mkdir -p "$parent"
parent=$(cd "$parent" && pwd)
target=$parent/$name
[[ $name != . && $name != .. ]] || die "target must name a directory: $target"

# Serialise concurrent builds into the same parent directory (flock(2) works on a
# directory fd, so no lock file is left behind).
exec 9<"$parent"
flock 9

# Only ever replace something this script built: an existing TARGET must be a directory
# that is empty or carries the sample marker.
if [[ -e $target || -L $target ]]; then
    [[ -d $target && ! -L $target ]] || die "$target exists and is not a directory; refusing to replace it"
    if [[ ! -e $target/.skiff-sample ]] && [[ -n $(ls -A "$target") ]]; then
        die "$target is not a Skiff sample rootfs (no .skiff-sample); refusing to replace it"
    fi
fi

# A mount left inside the old rootfs (say a test's /proc) must not be deleted through.
if awk -v t="$target" '{ gsub(/\\040/, " ", $5) } $5 == t || index($5, t "/") == 1 { found = 1 } END { exit !found }' \
    /proc/self/mountinfo 2>/dev/null; then
    die "something is mounted at or under $target; unmount it first"
fi

# --- build in a temporary sibling ------------------------------------------------------

umask 022
tmp=""
old=""
cleanup() {
    local rc=$?
    # Interrupted between moving the old rootfs aside and moving the new one in: put the
    # old one back, so TARGET is either the old or the new rootfs, never missing or half.
    if [[ -n $old && -e $old ]]; then
        if [[ ! -e $target ]]; then
            mv -T -- "$old" "$target" || true
        else
            rm -rf --one-file-system -- "$old" || true
        fi
    fi
    if [[ -n $tmp && -e $tmp ]]; then
        rm -rf --one-file-system -- "$tmp" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d "$parent/.$name.new.XXXXXX")
chmod 0755 "$tmp"

mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/tmp,home,run,mnt}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 0700 "$tmp/root"

install -m 0755 "$busybox" "$tmp/bin/busybox"

# One symlink per applet, where busybox itself would install it, pointing at
# /bin/busybox by a relative path so the link works wherever the rootfs is viewed from.
while IFS= read -r applet; do
    [[ -n $applet ]] || continue
    case $applet in
        /* | *..*) die "unexpected applet path from busybox --list-full: $applet" ;;
        bin/busybox) continue ;;
    esac
    dir=$(dirname "$applet")
    if [[ $dir == bin ]]; then
        link=busybox
    elif [[ $dir == . ]]; then
        link=bin/busybox
    else
        up=${dir//[!\/]/}    # one "../" per path component of dir
        link=$(printf '../%.0s' $(seq 0 "${#up}"))bin/busybox
    fi
    mkdir -p "$tmp/$dir"
    ln -s "$link" "$tmp/$applet"
done < <("$busybox" --list-full)
[[ -L $tmp/bin/sh ]] || die "busybox --list-full gave no bin/sh; is $busybox a full busybox?"

cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo skiff >"$tmp/etc/hostname"
cat >"$tmp/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
: >"$tmp/etc/resolv.conf"

# The first line of busybox's help, e.g. "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) ...".
help=$("$busybox" 2>&1 || true)
version_line=${help%%$'\n'*}
version=$(sed -n 's/^BusyBox v\([^ ]*\).*/\1/p' <<<"$version_line")
cat >"$tmp/etc/os-release" <<EOF
NAME="Skiff busybox sample"
ID=skiff-busybox
VERSION_ID="${version:-unknown}"
PRETTY_NAME="Skiff busybox sample (BusyBox ${version:-unknown})"
EOF

gcc -static -O2 -Wall -Wextra -Werror "$probe_src" -o "$tmp/probe"
chmod 0755 "$tmp/probe"

# Marker last: its presence says the rootfs is a complete sample built by this script.
printf '%s\n' "$version_line" >"$tmp/.skiff-sample"

# --- swap into place -------------------------------------------------------------------

if [[ -e $target ]]; then
    old=$(mktemp -d "$parent/.$name.old.XXXXXX")
    mv -T -- "$target" "$old"
fi
mv -T -- "$tmp" "$target"
tmp=""
if [[ -n $old ]]; then
    rm -rf --one-file-system -- "$old"
    old=""
fi

echo "busybox sample rootfs ready at $target"
