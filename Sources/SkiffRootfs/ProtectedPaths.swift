import SkiffKernel

/// Parts of /proc and /sys that tell or change too much about the host, hidden or made
/// read-only inside the container: the same lists runc and Docker use by default.
public enum ProtectedPaths {
    /// Hidden: a file gets /dev/null bound over it, a directory an empty read-only tmpfs.
    /// /proc/kcore is the host's memory; /proc/keys and timer_list leak kernel state and
    /// addresses; /sys/firmware holds the firmware's tables.
    public static let masked = [
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ]

    /// Readable but not writable: /proc/sys is the host's sysctls, sysrq-trigger can reboot it.
    public static let readOnly = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    /// Masks each path that exists (after pivot_root: the paths are the container's).
    public static func mask(_ paths: [String] = masked, kernel: Kernel) throws(SyscallError) {
        for path in paths {
            guard let isDirectory = Files.isDirectory(path) else { continue }
            if isDirectory {
                try kernel.run(
                    .mount(source: "tmpfs", target: path, fstype: "tmpfs", flags: [.readOnly, .noSuid, .noDev, .noExec], data: "size=0"),
                    why: "hide \(path) under an empty, read-only tmpfs")
            } else {
                try kernel.run(
                    .mount(source: "/dev/null", target: path, fstype: nil, flags: [.bind], data: nil),
                    why: "hide \(path): reading it gives nothing")
            }
        }
    }

    /// Makes each existing path read-only: bind it onto itself, then remount the bind read-only,
    /// keeping nosuid, nodev and noexec (a user namespace may not clear them).
    public static func makeReadOnly(_ paths: [String] = readOnly, kernel: Kernel) throws(SyscallError) {
        for path in paths where Files.exists(path) {
            try kernel.run(
                .mount(source: path, target: path, fstype: nil, flags: [.bind, .recursive], data: nil),
                why: "a mount of its own for \(path)")
            try kernel.run(
                .mount(source: nil, target: path, fstype: nil, flags: [.remount, .bind, .readOnly, .noSuid, .noDev, .noExec], data: nil),
                why: "so that it can be read-only: the host's settings stay the host's")
        }
    }

    /// `--read-only`: the root itself read-only (writes only to volumes, /tmp mounts, /dev).
    public static func makeRootReadOnly(kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .mount(source: nil, target: "/", fstype: nil, flags: [.remount, .bind, .readOnly], data: nil),
            why: "--read-only: the container's root cannot be written")
    }
}
