import SkiffKernel

/// Mounts that every container needs, whatever its root.
public enum Mounts {
    /// In a new mount namespace the mounts are copies, but still shared with the host's peer
    /// group: a mount made here would show up on the host. MS_REC|MS_PRIVATE cuts that link
    /// (mount_namespaces(7)), as `unshare --mount` does by default.
    public static func makePrivate(kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .mount(source: nil, target: "/", fstype: nil, flags: [.recursive, .private], data: nil),
            why: "stop our mounts from propagating to the host")
    }

    /// A proc(5) filesystem at `target`. Mounted from inside a new PID namespace, it shows that
    /// namespace's processes only.
    public static func mountProc(at target: String, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .mount(source: "proc", target: target, fstype: "proc", flags: [.noSuid, .noDev, .noExec], data: nil),
            why: "a /proc that shows only this PID namespace's processes")
    }
}
