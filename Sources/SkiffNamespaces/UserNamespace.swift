@preconcurrency import Glibc
import SkiffKernel

/// One line of /proc/PID/uid_map or gid_map: `size` ids from `containerID` inside map to
/// `hostID` outside (user_namespaces(7)).
public struct IDMapping: Sendable, Equatable, CustomStringConvertible {
    public let containerID: UInt32
    public let hostID: UInt32
    public let size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }

    /// Root inside is `hostRoot` outside, with `size` ids in all (default 65536, as Docker's
    /// userns-remap gives each container). Refuses a range that wraps past the largest id.
    public init(rootTo hostRoot: UInt32, size: UInt32 = 65536) throws(SkiffError) {
        guard hostRoot != 0 else {
            throw SkiffError(
                .invalidInput, "--map-root-to 0 maps the container's root to the host's root: pick an unused range such as 100000")
        }
        guard size > 0, UInt64(hostRoot) + UInt64(size) <= UInt64(UInt32.max) else {
            throw SkiffError(
                .invalidInput, "--map-root-to \(hostRoot): the range of \(size) ids would pass the largest id \(UInt32.max - 1)")
        }
        self.init(containerID: 0, hostID: hostRoot, size: size)
    }

    /// `0 100000 65536`, the format the kernel reads and prints.
    public var description: String { "\(containerID) \(hostID) \(size)" }
}

/// The user namespace: root inside, an unprivileged id outside.
public enum UserNamespace {
    /// Writes the child's uid_map and gid_map from the parent. Only a process outside the new
    /// namespace with CAP_SETUID there may map ranges, which is why the child waits for this.
    /// An unprivileged writer must first deny setgroups(2), so that dropping supplementary groups
    /// cannot be used to gain access (CVE-2014-8989); root does not need to.
    public static func writeMaps(for pid: pid_t, uid: IDMapping, gid: IDMapping, kernel: Kernel) throws(SyscallError) {
        try writeMaps(for: pid, uids: [uid], gids: [gid], kernel: kernel)
    }

    /// The same with several ranges each (an OCI spec may list many lines).
    public static func writeMaps(for pid: pid_t, uids: [IDMapping], gids: [IDMapping], kernel: Kernel) throws(SyscallError) {
        let single = uids.count == 1 ? uids[0] : nil
        try kernel.run(
            .writeFile("/proc/\(pid)/uid_map", contents: uids.map { "\($0)\n" }.joined()),
            why: single.map { "user ids: \($0.containerID) inside is \($0.hostID) outside, \($0.size) ids" }
                ?? "user ids, \(uids.count) ranges")
        if geteuid() != 0 {
            try kernel.run(
                .writeFile("/proc/\(pid)/setgroups", contents: "deny\n"),
                why: "an unprivileged writer must deny setgroups before mapping groups")
        }
        try kernel.run(.writeFile("/proc/\(pid)/gid_map", contents: gids.map { "\($0)\n" }.joined()), why: "group ids, the same way")
    }

    /// Becomes uid 0 and gid 0 of the new namespace. Until now the child ran as the host's uid,
    /// which has no mapping inside and shows as 65534 (nobody).
    public static func becomeRoot(kernel: Kernel) throws(SyscallError) {
        try kernel.switchUser(
            uid: 0, gid: 0, groups: [],
            why: (
                "drop the host's supplementary groups, which mean nothing in here", "become group 0 inside: gid 0 maps to the host range",
                "become root inside: an unprivileged uid outside"
            ))
    }
}

/// A user namespace that exists only to lend its id mapping: idmapped mounts (mount_setattr(2))
/// take their mapping from a user namespace, and the container's own does not exist yet when its
/// layers are staged. The holder is a child that waits on a pipe and is never let go.
public struct MappingHolder: LentUserNamespace {
    let process: ContainerProcess

    /// The /proc/PID/ns/user path of the namespace, for `MOUNT_ATTR_IDMAP`.
    public var userNamespacePath: String { "/proc/\(process.pid)/ns/user" }

    public init(uid: IDMapping, gid: IDMapping, kernel: Kernel) throws(SyscallError) {
        process = try ContainerProcess.clone([.user], kernel: kernel, why: "a user namespace that lends its id mapping to mounts") { _ in
            _exit(0)
        }
        do {
            try UserNamespace.writeMaps(for: process.pid, uid: uid, gid: gid, kernel: kernel)
        } catch {
            release(kernel: kernel)
            throw error
        }
    }

    /// Ends the holder. Mounts already idmapped keep their mapping.
    public func release(kernel: Kernel) {
        try? kernel.run(.kill(pid: process.pid, signal: SIGKILL), why: "the mapping is lent: end the holder")
        _ = try? process.wait()
    }
}
