import SkiffKernel

/// rtnetlink (rtnetlink(7)) messages, built byte by byte in the host's (little-endian) order:
/// a struct nlmsghdr, a fixed header for the message type (ifinfomsg, ifaddrmsg, rtmsg) and
/// attributes (struct rtattr: length, type, payload padded to 4 bytes), some nested.
enum RouteMessage {
    // Message types (linux/rtnetlink.h).
    static let newLink: UInt16 = 16
    static let deleteLink: UInt16 = 17
    static let getLink: UInt16 = 18
    static let newAddress: UInt16 = 20
    static let newRoute: UInt16 = 24
    // Flags (linux/netlink.h).
    static let flagRequest: UInt16 = 0x1
    static let flagAck: UInt16 = 0x4
    static let flagExclusive: UInt16 = 0x200
    static let flagCreate: UInt16 = 0x400
    // Link attributes (linux/if_link.h).
    static let interfaceName: UInt16 = 3  // IFLA_IFNAME
    static let master: UInt16 = 10  // IFLA_MASTER
    static let linkInfo: UInt16 = 18  // IFLA_LINKINFO
    static let namespacePID: UInt16 = 19  // IFLA_NET_NS_PID
    static let namespaceFD: UInt16 = 28  // IFLA_NET_NS_FD
    static let mtu: UInt16 = 4  // IFLA_MTU
    static let getAddress: UInt16 = 22
    static let flagDump: UInt16 = 0x300
    static let infoKind: UInt16 = 1  // IFLA_INFO_KIND
    static let infoData: UInt16 = 2  // IFLA_INFO_DATA
    static let vethPeer: UInt16 = 1  // VETH_INFO_PEER
    static let interfaceUp: UInt32 = 0x1  // IFF_UP
    // Address and route attributes (linux/if_addr.h, linux/rtnetlink.h).
    static let addressAddress: UInt16 = 1  // IFA_ADDRESS
    static let addressLocal: UInt16 = 2  // IFA_LOCAL
    static let addressBroadcast: UInt16 = 4  // IFA_BROADCAST
    static let routeOutputInterface: UInt16 = 4  // RTA_OIF
    static let routeGateway: UInt16 = 5  // RTA_GATEWAY
    static let familyIPv4: UInt8 = 2  // AF_INET

    /// RTM_NEWLINK for `link`, found by name (IFLA_IFNAME, ifi_index 0), setting or clearing IFF_UP.
    static func setFlags(link: String, up: Bool, namespacePID: Int32? = nil) -> NetlinkRequest {
        let body = interfaceInfo(flags: up ? interfaceUp : 0, change: interfaceUp) + attribute(interfaceName, cString(link))
        return request(
            newLink, flags: 0, body: body, summary: "RTM_NEWLINK \(link) \(up ? "IFF_UP" : "~IFF_UP")", namespacePID: namespacePID)
    }

    /// A bridge: RTM_NEWLINK with IFLA_LINKINFO { IFLA_INFO_KIND "bridge" }.
    static func createBridge(_ name: String) -> NetlinkRequest {
        let body = interfaceInfo() + attribute(interfaceName, cString(name)) + attribute(linkInfo, attribute(infoKind, cString("bridge")))
        return request(newLink, flags: flagCreate | flagExclusive, body: body, summary: "RTM_NEWLINK \(name) kind bridge")
    }

    /// A veth pair, `hostName` here and its peer `peerName` made directly in the network
    /// namespace of `peerNamespacePID`: IFLA_INFO_DATA { VETH_INFO_PEER: ifinfomsg, IFLA_IFNAME,
    /// IFLA_NET_NS_PID }.
    static func createVethPair(hostName: String, peerName: String, peerNamespacePID: Int32) -> NetlinkRequest {
        let peer =
            interfaceInfo() + attribute(interfaceName, cString(peerName))
            + attribute(namespacePID, bytes(UInt32(bitPattern: peerNamespacePID)))
        let info = attribute(infoKind, cString("veth")) + attribute(infoData, attribute(vethPeer, peer))
        let body = interfaceInfo() + attribute(interfaceName, cString(hostName)) + attribute(linkInfo, info)
        return request(
            newLink, flags: flagCreate | flagExclusive, body: body,
            summary: "RTM_NEWLINK \(hostName) kind veth peer \(peerName) in the netns of \(peerNamespacePID)")
    }

    /// Plugs `link` into the bridge with index `bridgeIndex` (IFLA_MASTER).
    static func setMaster(link: String, bridgeIndex: Int32, bridgeName: String) -> NetlinkRequest {
        let body = interfaceInfo() + attribute(interfaceName, cString(link)) + attribute(master, bytes(UInt32(bitPattern: bridgeIndex)))
        return request(newLink, flags: 0, body: body, summary: "RTM_NEWLINK \(link) master \(bridgeName)")
    }

    /// Sets the MTU of `link` (IFLA_MTU).
    static func setMTU(link: String, mtu value: UInt32, namespacePID: Int32? = nil) -> NetlinkRequest {
        let body = interfaceInfo() + attribute(interfaceName, cString(link)) + attribute(mtu, bytes(value))
        return request(newLink, flags: 0, body: body, summary: "RTM_NEWLINK \(link) mtu \(value)", namespacePID: namespacePID)
    }

    /// Renames the link with index `index` (a name can only change while the link is down).
    static func rename(index: Int32, to name: String, namespacePID: Int32? = nil) -> NetlinkRequest {
        var header = interfaceInfo()
        header.replaceSubrange(4..<8, with: bytes(index))
        return request(
            newLink, flags: 0, body: header + attribute(interfaceName, cString(name)), summary: "RTM_NEWLINK index \(index) name \(name)",
            namespacePID: namespacePID)
    }

    /// Moves `link` into the network namespace of process `pid` (IFLA_NET_NS_PID), or of the
    /// namespace file descriptor `fd` (IFLA_NET_NS_FD).
    static func move(link: String, toNamespaceOfPID pid: Int32? = nil, fd: Int32? = nil) -> NetlinkRequest {
        let target =
            pid.map { attribute(namespacePID, bytes(UInt32(bitPattern: $0))) }
            ?? attribute(namespaceFD, bytes(UInt32(bitPattern: fd ?? -1)))
        let body = interfaceInfo() + attribute(interfaceName, cString(link)) + target
        return request(newLink, flags: 0, body: body, summary: "RTM_NEWLINK \(link) netns \(pid.map { "of \($0)" } ?? "fd \(fd ?? -1)")")
    }

    /// Every link: a dump of RTM_NEWLINK answers.
    static func listLinks(namespacePID: Int32? = nil) -> NetlinkRequest {
        request(getLink, flags: flagDump, body: interfaceInfo(), summary: "RTM_GETLINK dump", namespacePID: namespacePID)
    }

    /// Every IPv4 address: a dump of RTM_NEWADDR answers.
    static func listAddresses(namespacePID: Int32? = nil) -> NetlinkRequest {
        request(
            getAddress, flags: flagDump, body: [familyIPv4, 0, 0, 0] + bytes(UInt32(0)), summary: "RTM_GETADDR dump",
            namespacePID: namespacePID)
    }

    /// The attributes of an answer after its fixed header of `headerLength` bytes: type -> payload.
    static func attributes(of answer: [UInt8], headerLength: Int) -> [UInt16: [UInt8]] {
        var result: [UInt16: [UInt8]] = [:]
        var offset = 16 + headerLength
        while offset + 4 <= answer.count {
            let length = Int(answer.loadLittleEndian(UInt16.self, at: offset))
            let type = answer.loadLittleEndian(UInt16.self, at: offset + 2) & 0x3fff
            guard length >= 4, offset + length <= answer.count else { break }
            result[type] = Array(answer[(offset + 4)..<(offset + length)])
            offset += (length + 3) & ~3
        }
        return result
    }

    static func deleteLink(_ name: String) -> NetlinkRequest {
        request(deleteLink, flags: 0, body: interfaceInfo() + attribute(interfaceName, cString(name)), summary: "RTM_DELLINK \(name)")
    }

    /// RTM_GETLINK by name: the answer is the link's RTM_NEWLINK, with its index.
    static func getLink(_ name: String, namespacePID: Int32? = nil) -> NetlinkRequest {
        request(
            getLink, flags: 0, body: interfaceInfo() + attribute(interfaceName, cString(name)), summary: "RTM_GETLINK \(name)",
            namespacePID: namespacePID)
    }

    /// An IPv4 address on the link with index `index` (struct ifaddrmsg + IFA_LOCAL, IFA_ADDRESS,
    /// IFA_BROADCAST).
    static func addAddress(
        _ address: IPv4Address, prefix: UInt8, index: Int32, link: String, broadcast: IPv4Address, namespacePID: Int32? = nil
    ) -> NetlinkRequest {
        let header: [UInt8] = [familyIPv4, prefix, 0, 0] + bytes(UInt32(bitPattern: index))
        let body =
            header + attribute(addressLocal, address.bytes) + attribute(addressAddress, address.bytes)
            + attribute(addressBroadcast, broadcast.bytes)
        return request(
            newAddress, flags: flagCreate | flagExclusive, body: body, summary: "RTM_NEWADDR \(address)/\(prefix) dev \(link)",
            namespacePID: namespacePID)
    }

    /// The default route via `gateway` out of link `index` (struct rtmsg: main table, boot
    /// protocol, universe scope, unicast; RTA_GATEWAY, RTA_OIF).
    static func addDefaultRoute(via gateway: IPv4Address, index: Int32, link: String, namespacePID: Int32? = nil) -> NetlinkRequest {
        let header: [UInt8] = [familyIPv4, 0, 0, 0, 254, 3, 0, 1] + bytes(UInt32(0))
        let body = header + attribute(routeGateway, gateway.bytes) + attribute(routeOutputInterface, bytes(UInt32(bitPattern: index)))
        return request(
            newRoute, flags: flagCreate | flagExclusive, body: body, summary: "RTM_NEWROUTE default via \(gateway) dev \(link)",
            namespacePID: namespacePID)
    }

    /// The index in an RTM_NEWLINK answer: ifi_index follows the 16-byte header and 4 bytes of
    /// family, pad and type.
    static func index(inLinkAnswer answer: [UInt8]) -> Int32? {
        answer.count >= 24 ? answer.loadLittleEndian(Int32.self, at: 20) : nil
    }

    /// struct ifinfomsg: family, pad, type, index, flags, change.
    static func interfaceInfo(flags: UInt32 = 0, change: UInt32 = 0) -> [UInt8] {
        [0, 0] + bytes(UInt16(0)) + bytes(Int32(0)) + bytes(flags) + bytes(change)
    }

    static func request(_ type: UInt16, flags: UInt16, body: [UInt8], summary: String, namespacePID: Int32? = nil) -> NetlinkRequest {
        let message = header(type: type, flags: flags, bodyLength: body.count) + body
        return NetlinkRequest(netlinkProtocol: 0, message: message, summary: summary, namespacePID: namespacePID)
    }

    /// struct nlmsghdr: length, type, flags, sequence, port id (0: the kernel fills it in).
    static func header(type: UInt16, flags: UInt16 = 0, bodyLength: Int) -> [UInt8] {
        bytes(UInt32(16 + bodyLength)) + bytes(type) + bytes(flagRequest | flagAck | flags) + bytes(UInt32(1)) + bytes(UInt32(0))
    }

    /// struct rtattr (length, type) + payload, padded to 4 bytes (RTA_ALIGN).
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = 4 + payload.count
        let padding = (4 - length % 4) % 4
        return bytes(UInt16(length)) + bytes(type) + payload + [UInt8](repeating: 0, count: padding)
    }

    static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}
