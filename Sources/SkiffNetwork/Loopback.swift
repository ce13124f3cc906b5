import SkiffKernel

/// rtnetlink (rtnetlink(7)): the messages that configure links. A new network namespace has one
/// link, `lo`, and it is down until someone brings it up: without that, not even 127.0.0.1 works.
public enum Link {
    /// Brings a link up by name: RTM_NEWLINK with ifi_change = ifi_flags = IFF_UP.
    public static func bringUp(_ name: String, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .netlink(RouteMessage.setFlags(link: name, up: true)),
            why: "bring \(name) up: a new network namespace starts with every link down")
    }
}

/// Builds rtnetlink messages byte by byte, in the host's (little-endian) order.
enum RouteMessage {
    static let rtmNewLink: UInt16 = 16
    static let flagRequest: UInt16 = 0x1
    static let flagAck: UInt16 = 0x4
    static let interfaceUp: UInt32 = 0x1  // IFF_UP
    static let attributeInterfaceName: UInt16 = 3  // IFLA_IFNAME

    /// RTM_NEWLINK for `link`, found by name (IFLA_IFNAME, ifi_index 0), setting or clearing IFF_UP.
    static func setFlags(link: String, up: Bool) -> NetlinkRequest {
        var body: [UInt8] = []
        // struct ifinfomsg: family, pad, type, index, flags, change.
        body += [0, 0] + bytes(UInt16(0)) + bytes(Int32(0))
        body += bytes(up ? interfaceUp : 0) + bytes(interfaceUp)
        body += attribute(attributeInterfaceName, Array(link.utf8) + [0])
        let message = header(type: rtmNewLink, bodyLength: body.count) + body
        return NetlinkRequest(netlinkProtocol: 0, message: message, summary: "RTM_NEWLINK \(link) \(up ? "IFF_UP" : "~IFF_UP")")
    }

    /// struct nlmsghdr: length, type, flags, sequence, port id (0: the kernel fills it in).
    static func header(type: UInt16, bodyLength: Int) -> [UInt8] {
        bytes(UInt32(16 + bodyLength)) + bytes(type) + bytes(flagRequest | flagAck) + bytes(UInt32(1)) + bytes(UInt32(0))
    }

    /// struct rtattr (length, type) + payload, padded to 4 bytes (RTA_ALIGN).
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 4 + payload.count
        let padding = (4 - length % 4) % 4
        return bytes(UInt16(length)) + bytes(type) + payload + [UInt8](repeating: 0, count: padding)
    }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
