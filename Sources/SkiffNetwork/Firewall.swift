import SkiffKernel

/// Outbound NAT and published ports with nftables, in a table of Skiff's own per bridge so
/// nothing else's rules are touched, and removing the table removes everything.
///
/// Published ports are elements of two maps, looked up by the DNAT rules: `published` (protocol
/// . port, for every host address) and `published_on` (address . protocol . port). Publishing
/// or withdrawing a port is adding or deleting one element; the rules never change. The output
/// chain handles connections from the host itself (127.0.0.1 or its own addresses), which do not
/// pass prerouting; those from 127.0.0.1 are masqueraded to the bridge address and need
/// `route_localnet` on the bridge, or the kernel drops them as martians.
public struct Firewall: Sendable {
    public let bridge: String
    public let subnet: Subnet

    public init(bridge: String, subnet: Subnet) {
        self.bridge = bridge
        self.subnet = subnet
    }

    /// `skiff_BRIDGE`; nft names allow letters, digits and underscores.
    public var table: String { "skiff_" + bridge.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }

    /// The table, its maps and its rules: an `nft -f` script.
    public var tableScript: String {
        let dnat = """
                    fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @published_on
                    fib daddr type local dnat ip to meta l4proto . th dport map @published
            """
        return """
            table ip \(table) {
                map published { type inet_proto . inet_service : ipv4_addr . inet_service; }
                map published_on { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
                chain prerouting {
                    type nat hook prerouting priority dstnat; policy accept;
            \(dnat)
                }
                chain output {
                    type nat hook output priority -100; policy accept;
            \(dnat)
                }
                chain postrouting {
                    type nat hook postrouting priority srcnat; policy accept;
                    ip saddr \(subnet) oifname != "\(bridge)" masquerade
                    ip saddr 127.0.0.0/8 oifname "\(bridge)" masquerade
                }
            }

            """
    }

    /// The `add element` (or `delete element`) commands for `ports` of a container at `address`.
    public func elementScript(_ verb: String, ports: [PortMapping], address: IPv4Address) -> String {
        ports.map { port in
            let key = "\(port.transport.rawValue) . \(port.hostPort)"
            let value = verb == "add" ? " : \(address) . \(port.containerPort)" : ""
            if let host = port.hostAddress {
                return "\(verb) element ip \(table) published_on { \(host) . \(key)\(value) }\n"
            }
            return "\(verb) element ip \(table) published { \(key)\(value) }\n"
        }.joined()
    }

    public func install(kernel: Kernel) throws(SkiffError) {
        try nft(tableScript, why: "NAT for the bridge: outbound masquerade and maps for published ports", kernel: kernel)
    }

    public func remove(kernel: Kernel) throws(SkiffError) {
        try nft("delete table ip \(table)\n", why: "the last container left: remove the bridge's NAT table", kernel: kernel)
    }

    public func publish(_ ports: [PortMapping], to address: IPv4Address, kernel: Kernel) throws(SkiffError) {
        guard !ports.isEmpty else { return }
        try nft(elementScript("add", ports: ports, address: address), why: "publish the container's ports", kernel: kernel)
    }

    public func withdraw(_ ports: [PortMapping], kernel: Kernel) throws(SkiffError) {
        guard !ports.isEmpty else { return }
        try nft(elementScript("delete", ports: ports, address: IPv4Address(0)), why: "withdraw the container's ports", kernel: kernel)
    }

    /// Runs `nft -f -` with `script`; the design allows this one tool (DESIGN §2).
    private func nft(_ script: String, why: String, kernel: Kernel) throws(SkiffError) {
        guard let nft = Tool.find("nft") else {
            throw SkiffError(.setupFailed, "nft is not installed: install the nftables package (apt-get install nftables)")
        }
        kernel.narrator.call("nft -f - <<< \(script.split(separator: "\n").first.map(String.init) ?? "")...", why: why)
        let result: Tool.Result
        do {
            result = try Tool.run(nft, ["-f", "-"], input: script)
        } catch {
            throw SkiffError(.setupFailed, "cannot run \(nft)", cause: error)
        }
        guard result.status == 0 else {
            let detail = result.errorOutput.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw SkiffError(.setupFailed, "nft refused the rules (\(detail))")
        }
    }
}
