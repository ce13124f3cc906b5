import CSkiff
@preconcurrency import Glibc

/// A netlink request (netlink(7)): the bytes of one message, which the kernel answers with an
/// acknowledgement. Layer modules build the bytes (SkiffNetwork speaks rtnetlink); this type only
/// carries them across the kernel boundary.
public struct NetlinkRequest: Hashable, Sendable {
    /// The netlink protocol, e.g. NETLINK_ROUTE (0).
    public let netlinkProtocol: Int32
    /// One message, starting with its nlmsghdr, with NLM_F_REQUEST|NLM_F_ACK set.
    public let message: [UInt8]
    /// What it asks, for narration: `RTM_NEWLINK lo IFF_UP`.
    public let summary: String

    public init(netlinkProtocol: Int32, message: [UInt8], summary: String) {
        self.netlinkProtocol = netlinkProtocol
        self.message = message
        self.summary = summary
    }

    var family: String { netlinkProtocol == NETLINK_ROUTE ? "NETLINK_ROUTE" : "NETLINK_\(netlinkProtocol)" }

    /// Sends the message and waits for its NLMSG_ERROR acknowledgement (error 0 is success).
    func send() throws(SyscallError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkProtocol)
        try check(fd, "socket AF_NETLINK \(family)")
        defer { close(fd) }
        // The kernel's address: nl_pid 0.
        var kernelAddress = sockaddr_nl()
        kernelAddress.nl_family = sa_family_t(AF_NETLINK)
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &kernelAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        if sent != message.count { throw SyscallError("sendto \(family)", path: summary) }

        var reply = [UInt8](repeating: 0, count: 4096)
        let received = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if received < 0 { throw SyscallError("recv \(family)", path: summary) }
        // nlmsghdr is 16 bytes: len, type (NLMSG_ERROR = 2), flags, seq, pid; then an int32 error.
        guard received >= 20, reply.loadLittleEndian(UInt16.self, at: 4) == 2 else {
            throw SyscallError("recv \(family)", path: summary, errno: EPROTO)
        }
        let error = reply.loadLittleEndian(Int32.self, at: 16)
        if error != 0 { throw SyscallError(summary, errno: -error) }
    }
}

extension Array where Element == UInt8 {
    func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value |= T(truncatingIfNeeded: self[offset + index]) << (8 * index) }
        return value
    }
}
