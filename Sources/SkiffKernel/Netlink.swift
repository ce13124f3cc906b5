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
    /// Whose network namespace to speak to: ours (nil) or that of process PID.
    public let namespacePID: Int32?

    public init(netlinkProtocol: Int32, message: [UInt8], summary: String, namespacePID: Int32? = nil) {
        self.netlinkProtocol = netlinkProtocol
        self.message = message
        self.summary = summary
        self.namespacePID = namespacePID
    }

    var family: String {
        let name = netlinkProtocol == NETLINK_ROUTE ? "NETLINK_ROUTE" : "NETLINK_\(netlinkProtocol)"
        return namespacePID.map { "\(name) in the netns of \($0)" } ?? name
    }

    /// Sends the message and waits for its NLMSG_ERROR acknowledgement (error 0 is success).
    func send() throws(SyscallError) {
        _ = try exchange()
    }

    /// Sends the message and returns the kernel's answers (for RTM_GET* requests), up to the
    /// acknowledgement or, for a dump, NLMSG_DONE. Reading is no change to the system, so this
    /// does not go through the `Syscalls` seam.
    public func query() throws(SyscallError) -> [[UInt8]] {
        try exchange()
    }

    /// A netlink socket speaks to the network namespace it was created in: for another
    /// process's namespace, enter it (setns(2)) just long enough to create the socket.
    private func openSocket() throws(SyscallError) -> Int32 {
        let type = Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        guard let namespacePID else {
            let fd = socket(AF_NETLINK, type, netlinkProtocol)
            try check(fd, "socket AF_NETLINK \(family)")
            return fd
        }
        let own = open("/proc/self/task/\(sk_gettid())/ns/net", O_RDONLY | O_CLOEXEC)
        try check(own, "open", "/proc/self/ns/net")
        defer { close(own) }
        let target = open("/proc/\(namespacePID)/ns/net", O_RDONLY | O_CLOEXEC)
        try check(target, "open", "/proc/\(namespacePID)/ns/net")
        defer { close(target) }
        try check(sk_setns(target, Int32(SK_CLONE_NEWNET)), "setns", "/proc/\(namespacePID)/ns/net")
        let fd = socket(AF_NETLINK, type, netlinkProtocol)
        let socketError = errno
        // Back home before anything else, whatever happened.
        if sk_setns(own, Int32(SK_CLONE_NEWNET)) != 0 { fatalError("cannot return to our own network namespace: errno \(errno)") }
        if fd < 0 { throw SyscallError("socket AF_NETLINK \(family)", errno: socketError) }
        return fd
    }

    private func exchange() throws(SyscallError) -> [[UInt8]] {
        let fd = try openSocket()
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

        var answers: [[UInt8]] = []
        var reply = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let received = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received < 0 {
                if errno == EINTR { continue }
                throw SyscallError("recv \(family)", path: summary)
            }
            // Each datagram holds messages, each an nlmsghdr (length, type, flags, seq, port id:
            // 16 bytes) and a body, aligned to 4 bytes.
            var offset = 0
            while offset + 16 <= received {
                let length = Int(reply.loadLittleEndian(UInt32.self, at: offset))
                let type = reply.loadLittleEndian(UInt16.self, at: offset + 4)
                guard length >= 16, offset + length <= received else { throw SyscallError("recv \(family)", path: summary, errno: EPROTO) }
                switch type {
                case 3:  // NLMSG_DONE: the end of a dump
                    return answers
                case 2:  // NLMSG_ERROR: an int32 error, 0 for the acknowledgement
                    let error = reply.loadLittleEndian(Int32.self, at: offset + 16)
                    if error != 0 { throw SyscallError(summary, errno: -error) }
                    return answers
                default:
                    answers.append(Array(reply[offset..<(offset + length)]))
                }
                offset += (length + 3) & ~3
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// Reads a little-endian integer at `offset`: netlink speaks the host's order, little-endian here.
    public func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size { value |= T(truncatingIfNeeded: self[offset + index]) << (8 * index) }
        return value
    }
}
