@preconcurrency import Glibc

/// The flags of mount(2), printed as `MS_BIND|MS_REC` the way runc's mount errors print them.
public struct MountFlags: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }

    public static let readOnly = MountFlags(rawValue: UInt(MS_RDONLY))
    public static let noSuid = MountFlags(rawValue: UInt(MS_NOSUID))
    public static let noDev = MountFlags(rawValue: UInt(MS_NODEV))
    public static let noExec = MountFlags(rawValue: UInt(MS_NOEXEC))
    public static let remount = MountFlags(rawValue: UInt(MS_REMOUNT))
    public static let bind = MountFlags(rawValue: UInt(MS_BIND))
    public static let recursive = MountFlags(rawValue: UInt(MS_REC))
    public static let `private` = MountFlags(rawValue: UInt(MS_PRIVATE))
    public static let slave = MountFlags(rawValue: UInt(MS_SLAVE))
    public static let strictAtime = MountFlags(rawValue: UInt(MS_STRICTATIME))
    public static let synchronous = MountFlags(rawValue: UInt(MS_SYNCHRONOUS))
    public static let noAtime = MountFlags(rawValue: UInt(MS_NOATIME))
    public static let noDirAtime = MountFlags(rawValue: UInt(MS_NODIRATIME))
    public static let relAtime = MountFlags(rawValue: UInt(MS_RELATIME))
    public static let shared = MountFlags(rawValue: UInt(MS_SHARED))
    public static let unbindable = MountFlags(rawValue: UInt(MS_UNBINDABLE))

    /// The propagation types: a mount(2) call sets one of them, alone (with MS_REC at most).
    public static let propagation: MountFlags = [.private, .slave, .shared, .unbindable]

    static let names: [(MountFlags, String)] = [
        (.readOnly, "MS_RDONLY"), (.noSuid, "MS_NOSUID"), (.noDev, "MS_NODEV"), (.noExec, "MS_NOEXEC"),
        (.remount, "MS_REMOUNT"), (.bind, "MS_BIND"), (.recursive, "MS_REC"), (.private, "MS_PRIVATE"),
        (.slave, "MS_SLAVE"), (.strictAtime, "MS_STRICTATIME"), (.synchronous, "MS_SYNCHRONOUS"), (.noAtime, "MS_NOATIME"),
        (.noDirAtime, "MS_NODIRATIME"), (.relAtime, "MS_RELATIME"), (.shared, "MS_SHARED"), (.unbindable, "MS_UNBINDABLE"),
    ]

    public var description: String {
        let flags = Self.names.filter { contains($0.0) }.map(\.1)
        return flags.isEmpty ? "0" : flags.joined(separator: "|")
    }
}
