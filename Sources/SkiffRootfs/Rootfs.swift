@preconcurrency import Glibc
import SkiffKernel

/// The directory that becomes the container's `/`, and how to furnish it.
public struct RootfsPlan: Sendable, Equatable {
    /// How /dev gets its device nodes.
    public enum Devices: Sendable, Equatable {
        /// mknod(2): needs CAP_MKNOD in the initial user namespace.
        case create
        /// Bind-mount the host's nodes, as rootless runc does: inside a user namespace mknod
        /// fails with EPERM, since a device node would bypass the host's permissions.
        case bindFromHost
    }

    /// How /sys is provided.
    public enum Sysfs: Sendable, Equatable {
        /// A fresh sysfs, read-only. Only the owner of the current network namespace may mount
        /// it, because sysfs shows that namespace's network devices.
        case mount
        /// A read-only recursive bind of the host's /sys, for a user namespace that does not own
        /// its network namespace (lesson 05): the host's devices stay visible, read-only.
        case bindFromHost
    }

    /// Absolute path of the root directory.
    public let path: String
    public var devices: Devices = .create
    public var sysfs: Sysfs = .mount

    /// The busybox sample that `make samples` builds (rootfs-samples/build-busybox.sh).
    public static let sample: String = {
        // #filePath is Sources/SkiffRootfs/Rootfs.swift in this checkout.
        let repository = "\(#filePath)".split(separator: "/").dropLast(3).joined(separator: "/")
        return "/\(repository)/rootfs-samples/build/busybox"
    }()

    /// A plan for `path` as given, unchecked: for a root the caller has checked (an OCI bundle's,
    /// already validated) and for tests that only record the calls.
    public init(unchecked path: String, devices: Devices = .create, sysfs: Sysfs = .mount) {
        self.path = path
        self.devices = devices
        self.sysfs = sysfs
    }

    /// Checks that `path` is a directory that can be a root, and makes it absolute.
    public init(validating path: String) throws(SkiffError) {
        guard let resolved = realpath(path, nil) else {
            let hint = path == Self.sample ? " (run `make samples` to build the busybox sample)" : ""
            throw SkiffError(.invalidInput, "rootfs \(path) does not exist\(hint): pass --rootfs DIR with a root filesystem")
        }
        defer { free(resolved) }
        let absolute = String(cString: resolved)
        var info = stat()
        guard stat(absolute, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw SkiffError(.invalidInput, "rootfs \(path) is not a directory: pass --rootfs DIR with a root filesystem")
        }
        guard absolute != "/" else {
            throw SkiffError(.invalidInput, "rootfs / is the host's own root: pass --rootfs DIR with a separate root filesystem")
        }
        self.path = absolute
    }
}

/// The steps that turn a directory into the container's root, in the order they must run.
/// Each is one call so lessons can show them one by one; `enter` runs them all.
public enum Rootfs {
    /// All of it: private mounts, the root bound to itself, /proc, /sys, /dev, then pivot_root.
    /// /proc, /sys and /dev go in before pivot_root because the host's /dev nodes (for
    /// `.bindFromHost`) are reachable only until then.
    public static func enter(_ plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        try Mounts.makePrivate(kernel: kernel)
        try bindToItself(plan, kernel: kernel)
        try mountProc(plan, kernel: kernel)
        try mountSys(plan, kernel: kernel)
        try populateDev(plan, kernel: kernel)
        try pivot(into: plan, kernel: kernel)
    }

    /// pivot_root(2) needs the new root to be a mount point; a bind mount onto itself makes it one.
    public static func bindToItself(_ plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .mount(source: plan.path, target: plan.path, fstype: nil, flags: [.bind, .recursive], data: nil),
            why: "pivot_root needs the new root to be a mount point")
    }

    public static func mountProc(_ plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        try kernel.run(.mkdir(plan.path + "/proc", mode: 0o555), why: "the mount point for /proc, never a symlink")
        try Mounts.mountProc(at: plan.path + "/proc", kernel: kernel)
    }

    public static func mountSys(_ plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        let target = plan.path + "/sys"
        try kernel.run(.mkdir(target, mode: 0o555), why: "the mount point for /sys")
        let locked: MountFlags = [.noSuid, .noDev, .noExec]
        switch plan.sysfs {
        case .mount:
            try kernel.run(
                .mount(source: "sysfs", target: target, fstype: "sysfs", flags: locked.union(.readOnly), data: nil),
                why: "sysfs, read-only: the container must not retune the host's kernel")
        case .bindFromHost:
            try kernel.run(
                .mount(source: "/sys", target: target, fstype: nil, flags: [.bind, .recursive], data: nil),
                why: "we may not mount sysfs without owning a network namespace: borrow the host's")
            try kernel.run(
                .mount(source: nil, target: target, fstype: nil, flags: locked.union([.remount, .bind, .readOnly]), data: nil),
                why: "and make it read-only (a bind mount takes its flags only on remount)")
        }
    }

    /// The devices every program expects (null zero full random urandom tty), a private devpts
    /// for terminals, /dev/shm, and the standard symlinks; the set runc and Docker give.
    public static func populateDev(_ plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        let dev = plan.path + "/dev"
        try kernel.run(.mkdir(dev, mode: 0o755), why: "the mount point for /dev")
        try kernel.run(
            .mount(source: "tmpfs", target: dev, fstype: "tmpfs", flags: [.noSuid, .strictAtime], data: "mode=755,size=65536k"),
            why: "an empty /dev of our own: the host's devices stay out")
        try createDevices(in: dev, plan.devices, kernel: kernel)
        try kernel.run(.mkdir(dev + "/pts", mode: 0o755), why: "the mount point for pseudo-terminals")
        try kernel.run(
            .mount(
                source: "devpts", target: dev + "/pts", fstype: "devpts", flags: [.noSuid, .noExec],
                data: "newinstance,ptmxmode=0666,mode=0620,gid=5"),
            why: "a devpts instance of our own: the host's terminals stay out")
        try kernel.run(.mkdir(dev + "/shm", mode: 0o1777), why: "the mount point for POSIX shared memory")
        try kernel.run(
            .mount(source: "shm", target: dev + "/shm", fstype: "tmpfs", flags: [.noSuid, .noDev, .noExec], data: "mode=1777,size=65536k"),
            why: "shared memory of our own")
        try createLinks(in: dev, kernel: kernel)
    }

    /// The standard device nodes in `dev`: made with mknod, or bound from the host's /dev.
    public static func createDevices(in dev: String, _ devices: RootfsPlan.Devices, kernel: Kernel) throws(SyscallError) {
        for device in standardDevices {
            let node = "\(dev)/\(device.name)"
            switch devices {
            case .create:
                try kernel.run(.mknod(node, mode: 0o666, major: device.major, minor: device.minor), why: "the \(device.name) device")
                try kernel.run(.chmod(node, mode: 0o666), why: "readable and writable by all (mknod applies the umask)")
            case .bindFromHost:
                try kernel.run(.createFile(node), why: "a file to bind the host's \(device.name) onto")
                try kernel.run(
                    .mount(source: "/dev/\(device.name)", target: node, fstype: nil, flags: [.bind], data: nil),
                    why: "mknod is not allowed in a user namespace: borrow the host's node")
            }
        }
    }

    /// The standard /dev symlinks (fd, stdin, stdout, stderr, ptmx, core).
    public static func createLinks(in dev: String, kernel: Kernel) throws(SyscallError) {
        for (name, target) in standardLinks {
            try kernel.run(.symlink(target: target, path: "\(dev)/\(name)"), why: "the standard /dev/\(name) link")
        }
    }

    /// pivot_root(".", "."): the new root goes to / and the old one is stacked on top of it,
    /// from where a lazy unmount removes it, with every host path beneath it. No put_old
    /// directory is needed (this trick is from LXC, and runc uses it too). Unlike chroot(2),
    /// nothing of the old root stays reachable.
    public static func pivot(into plan: RootfsPlan, kernel: Kernel) throws(SyscallError) {
        try kernel.run(.chdir(plan.path), why: "pivot_root(\".\", \".\") works on the current directory")
        try kernel.run(.pivotRoot(newRoot: ".", putOld: "."), why: "make it the root; the old root is stacked on top")
        try kernel.run(.umount(".", detach: true), why: "detach the old root: the host's files are gone from here")
        try kernel.run(.chdir("/"), why: "start in the new root")
    }

    static let standardDevices: [(name: String, major: UInt32, minor: UInt32)] = [
        ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
    ]

    static let standardLinks: [(String, String)] = [
        ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
    ]
}

extension RootfsPlan {
    /// The environment a command gets inside this root: the host's would point at host paths.
    /// The same defaults Docker sets.
    public func environment(hostname: String) -> [String] {
        let terminal = getenv("TERM").map { String(cString: $0) } ?? "xterm"
        return [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=\(hostname)", "HOME=/root", "TERM=\(terminal)",
        ]
    }
}
