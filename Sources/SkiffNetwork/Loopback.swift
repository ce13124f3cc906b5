import SkiffKernel

/// Links by name: bring up, and for the bridge network create, enslave and delete.
public enum Link {
    /// A link as the kernel lists it.
    public struct Info: Equatable, Sendable {
        public let index: Int32
        public let name: String
        public let isUp: Bool
    }

    /// An IPv4 address on a link.
    public struct Address: Equatable, Sendable, CustomStringConvertible {
        public let index: Int32
        public let address: IPv4Address
        public let prefix: UInt8
        public var description: String { "\(address)/\(prefix)" }
    }

    /// Every link of our network namespace, or of process `namespacePID`'s (RTM_GETLINK dump).
    public static func list(namespacePID: Int32? = nil) throws(SyscallError) -> [Info] {
        try RouteMessage.listLinks(namespacePID: namespacePID).query().compactMap { answer in
            guard answer.count >= 32, let index = RouteMessage.index(inLinkAnswer: answer) else { return nil }
            let flags = answer.loadLittleEndian(UInt32.self, at: 24)
            guard let name = RouteMessage.attributes(of: answer, headerLength: 16)[RouteMessage.interfaceName] else { return nil }
            return Info(
                index: index, name: String(decoding: name.prefix { $0 != 0 }, as: UTF8.self), isUp: flags & RouteMessage.interfaceUp != 0)
        }
    }

    /// Every IPv4 address (RTM_GETADDR dump).
    public static func addresses(namespacePID: Int32? = nil) throws(SyscallError) -> [Address] {
        try RouteMessage.listAddresses(namespacePID: namespacePID).query().compactMap { answer in
            guard answer.count >= 24 else { return nil }
            let prefix = answer[17]
            let index = answer.loadLittleEndian(Int32.self, at: 20)
            let attributes = RouteMessage.attributes(of: answer, headerLength: 8)
            guard let local = attributes[RouteMessage.addressLocal] ?? attributes[RouteMessage.addressAddress], local.count == 4 else {
                return nil
            }
            let value = local.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return Address(index: index, address: IPv4Address(value), prefix: prefix)
        }
    }

    /// Brings a link up by name: RTM_NEWLINK with ifi_change = ifi_flags = IFF_UP.
    public static func bringUp(_ name: String, namespacePID: Int32? = nil, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .netlink(RouteMessage.setFlags(link: name, up: true, namespacePID: namespacePID)),
            why: "bring \(name) up: a new network namespace starts with every link down")
    }
}
