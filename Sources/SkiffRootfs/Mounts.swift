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

    /// Gives this process a private mount table of its own. Mounts it then makes (staging the
    /// layers of a union, say) are seen by the containers it clones afterwards but never by the
    /// host, and they vanish by themselves when the process exits, even if it crashes.
    /// Call it while the process has one thread: unshare(CLONE_NEWNS) fails in a threaded one.
    public static func isolateThisProcess(kernel: Kernel) throws(SyscallError) {
        try kernel.run(.unshare(.mount), why: "a mount table of our own: staging mounts never reach the host")
        try makePrivate(kernel: kernel)
    }

    /// A proc(5) filesystem at `target`. Mounted from inside a new PID namespace, it shows that
    /// namespace's processes only.
    public static func mountProc(at target: String, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .mount(source: "proc", target: target, fstype: "proc", flags: [.noSuid, .noDev, .noExec], data: nil),
            why: "a /proc that shows only this PID namespace's processes")
    }
}
