import SkiffKernel

/// The IPC namespace (ipc_namespaces(7)) isolates System V IPC objects (shared memory, semaphores,
/// message queues) and POSIX message queues. Nothing needs to be done inside for System V IPC:
/// the new namespace simply starts empty. POSIX queues live in an mqueue filesystem, which shows
/// the queues of the namespace that mounts it.
public enum IPCNamespace {
    public static func mountMessageQueues(at target: String, kernel: Kernel) throws(SyscallError) {
        try kernel.run(.mkdir(target, mode: 0o1777), why: "the mount point for POSIX message queues")
        try kernel.run(
            .mount(source: "mqueue", target: target, fstype: "mqueue", flags: [.noSuid, .noDev, .noExec], data: nil),
            why: "the message queues of this IPC namespace, not the host's")
    }
}
