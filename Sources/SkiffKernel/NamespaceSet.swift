import CSkiff

/// A set of Linux namespaces, as the CLONE_NEW* flags of clone(2) and unshare(2).
public struct NamespaceSet: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let mount = NamespaceSet(rawValue: SK_CLONE_NEWNS)
    public static let cgroup = NamespaceSet(rawValue: SK_CLONE_NEWCGROUP)
    public static let uts = NamespaceSet(rawValue: SK_CLONE_NEWUTS)
    public static let ipc = NamespaceSet(rawValue: SK_CLONE_NEWIPC)
    public static let user = NamespaceSet(rawValue: SK_CLONE_NEWUSER)
    public static let pid = NamespaceSet(rawValue: SK_CLONE_NEWPID)
    public static let network = NamespaceSet(rawValue: SK_CLONE_NEWNET)

    /// Flag names in the order the kernel documents them, with the /proc/PID/ns entry of each.
    static let names: [(NamespaceSet, flag: String, proc: String)] = [
        (.mount, "CLONE_NEWNS", "mnt"), (.cgroup, "CLONE_NEWCGROUP", "cgroup"),
        (.uts, "CLONE_NEWUTS", "uts"), (.ipc, "CLONE_NEWIPC", "ipc"),
        (.user, "CLONE_NEWUSER", "user"), (.pid, "CLONE_NEWPID", "pid"),
        (.network, "CLONE_NEWNET", "net"),
    ]

    /// `CLONE_NEWUTS|CLONE_NEWPID`, as a C programmer would write it.
    public var description: String {
        let flags = Self.names.filter { contains($0.0) }.map(\.flag)
        return flags.isEmpty ? "0" : flags.joined(separator: "|")
    }

    /// The names of these namespaces under /proc/PID/ns (`uts`, `pid`, ...).
    public var procNames: [String] { Self.names.filter { contains($0.0) }.map(\.proc) }
}
