import SkiffKernel

/// An IPv4 address, held as a host-order number so subnets are arithmetic.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// `10.88.0.2`; nil for anything else (leading zeros, out-of-range parts, extra dots).
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), let byte = UInt8(part),
                part == "0" || !part.hasPrefix("0")
            else { return nil }
            value = value << 8 | UInt32(byte)
        }
        self.value = value
    }

    /// Network byte order, as netlink and sockets want it.
    public var bytes: [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }

    public var description: String { bytes.map(String.init).joined(separator: ".") }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
}

/// An IPv4 subnet, `10.88.0.0/16`.
public struct Subnet: Hashable, Sendable, CustomStringConvertible {
    public let network: IPv4Address
    public let prefix: UInt8

    public init(network: IPv4Address, prefix: UInt8) {
        self.network = network
        self.prefix = prefix
    }

    /// Parses CIDR notation; the address must be the network's first (no host bits set), and the
    /// prefix 8 to 30, so that there is a gateway and at least two containers.
    public init(parsing text: String) throws(SkiffError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(String(parts[0])), let prefix = UInt8(parts[1]), (8...30).contains(prefix) else {
            throw SkiffError(.invalidInput, "invalid subnet \"\(text)\": use CIDR notation with a prefix from 8 to 30, e.g. 10.88.0.0/16")
        }
        let subnet = Subnet(network: address, prefix: prefix)
        guard address.value & ~subnet.mask == 0 else {
            throw SkiffError(
                .invalidInput,
                "invalid subnet \"\(text)\": host bits are set; did you mean \(IPv4Address(address.value & subnet.mask))/\(prefix)?")
        }
        self = subnet
    }

    public var mask: UInt32 { prefix == 0 ? 0 : UInt32.max << (32 - UInt32(prefix)) }
    /// The bridge's own address: the first in the subnet.
    public var gateway: IPv4Address { IPv4Address(network.value + 1) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }
    /// The addresses containers may get: after the gateway, before the broadcast address.
    public var hosts: ClosedRange<UInt32> { (network.value + 2)...(broadcast.value - 1) }

    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }

    public func overlaps(_ other: Subnet) -> Bool {
        let shorter = min(mask, other.mask)
        return network.value & shorter == other.network.value & shorter
    }

    public var description: String { "\(network)/\(prefix)" }
}

/// The host's IPv4 routes, from /proc/net/route (proc(5)): destination, mask and device.
public enum HostRoutes {
    public struct Route: Sendable, Equatable {
        public let device: String
        public let subnet: Subnet
    }

    /// Routes other than the default one: those a new bridge subnet must not overlap.
    public static func read(from path: String = "/proc/net/route") -> [Route] {
        guard let text = try? Files.readText(path) else { return [] }
        return parse(text)
    }

    static func parse(_ text: String) -> [Route] {
        text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(whereSeparator: \.isWhitespace)
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses in hex, as
            // the kernel holds them in memory (network order read as a little-endian number).
            guard fields.count >= 8, let destination = UInt32(fields[1], radix: 16), let mask = UInt32(fields[7], radix: 16), mask != 0
            else {
                return nil
            }
            let prefix = UInt8(mask.nonzeroBitCount)
            return Route(device: String(fields[0]), subnet: Subnet(network: IPv4Address(destination.byteSwapped), prefix: prefix))
        }
    }
}
