import SkiffSecurity

/// The mount option words a spec may use, for `features`.
public enum ContainerPlanOptions {
    public static var mountOptions: [String] {
        ContainerPlan.flagOptions.keys.sorted() + [
            "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
        ]
    }
}

/// What `skiff-runtime spec` writes: runc's default in substance. `sh` in a rootfs directory
/// beside config.json, as root with Docker's default capabilities, new namespaces (no user
/// namespace), the usual /proc /dev /sys mounts, masked and read-only paths, and the default
/// seccomp profile.
public enum DefaultSpec {
    public static func make() -> Spec {
        let capabilities = CapabilitySet.containerDefault.names.map { "CAP_" + $0.uppercased() }
        func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> Spec.Mount {
            Spec.Mount(destination: destination, type: type, source: source, options: options)
        }
        return Spec(
            ociVersion: "1.2.0",
            process: Spec.Process(
                terminal: false, user: Spec.Process.User(uid: 0, gid: 0), args: ["sh"],
                env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], cwd: "/",
                capabilities: Spec.Process.Capabilities(
                    bounding: capabilities, effective: capabilities, inheritable: nil, permitted: capabilities, ambient: nil),
                rlimits: [Spec.Process.Rlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)], noNewPrivileges: true),
            root: Spec.Root(path: "rootfs", readonly: true),
            hostname: "skiff",
            mounts: [
                mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ],
            linux: Spec.Linux(
                namespaces: ["pid", "network", "ipc", "uts", "mount"].map { Spec.Linux.Namespace(type: $0) },
                resources: Spec.Linux.Resources(devices: [Spec.Linux.Resources.Device(allow: false, access: "rwm")]),
                seccomp: SeccompProfile.containerDefault,
                maskedPaths: [
                    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
                ],
                readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]))
    }
}
