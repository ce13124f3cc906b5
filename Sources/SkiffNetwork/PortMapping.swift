import SkiffKernel

/// A published port, `docker run -p` style: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`.
public struct PortMapping: Hashable, Sendable, CustomStringConvertible {
    public enum Transport: String, Sendable { case tcp, udp }

    /// Only connections to this host address, or to any of the host's addresses when nil.
    public let hostAddress: IPv4Address?
    public let hostPort: UInt16
    public let containerPort: UInt16
    public let transport: Transport

    public init(hostAddress: IPv4Address? = nil, hostPort: UInt16, containerPort: UInt16, transport: Transport = .tcp) {
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.transport = transport
    }

    public init(parsing text: String) throws(SkiffError) {
        let invalid = SkiffError(
            .invalidInput, "invalid -p \"\(text)\": use [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] with ports from 1 to 65535, e.g. 8080:80")
        var spec = Substring(text)
        var transport = Transport.tcp
        if let slash = spec.lastIndex(of: "/") {
            guard let parsed = Transport(rawValue: String(spec[spec.index(after: slash)...])) else { throw invalid }
            transport = parsed
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), let hostPort = UInt16(parts[parts.count - 2]),
            let containerPort = UInt16(parts[parts.count - 1]),
            hostPort > 0, containerPort > 0
        else { throw invalid }
        var hostAddress: IPv4Address?
        if parts.count == 3 {
            guard let address = IPv4Address(parts[0]) else { throw invalid }
            hostAddress = address.value == 0 ? nil : address
        }
        self.init(hostAddress: hostAddress, hostPort: hostPort, containerPort: containerPort, transport: transport)
    }

    /// Two mappings want the same host port when protocol and port match and their host
    /// addresses can meet (either is "any", or they are equal).
    public func conflicts(with other: PortMapping) -> Bool {
        transport == other.transport && hostPort == other.hostPort
            && (hostAddress == nil || other.hostAddress == nil || hostAddress == other.hostAddress)
    }

    /// `127.0.0.1:8080:80/tcp`, the form it was parsed from.
    public var description: String {
        (hostAddress.map { "\($0):" } ?? "") + "\(hostPort):\(containerPort)/\(transport.rawValue)"
    }
}
