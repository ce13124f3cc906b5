@preconcurrency import Glibc
import SkiffKernel

/// Outbound NAT and published ports with nftables, in a table of Skiff's own per bridge so
/// nothing else's rules are touched, and removing the table removes everything. Where nft is
/// missing (or SKIFF_FIREWALL=iptables asks for it), the same rules are written with iptables,
/// in a chain of Skiff's own, as Docker does.
///
/// Published ports are elements of two maps, looked up by the DNAT rules: `published` (protocol
/// . port, for every host address) and `published_on` (address . protocol . port). Publishing
/// or withdrawing a port is adding or deleting one element; the rules never change. The output
/// chain handles connections from the host itself (127.0.0.1 or its own addresses), which do not
/// pass prerouting; those from 127.0.0.1 are masqueraded to the bridge address and need
/// `route_localnet` on the bridge, or the kernel drops them as martians.
public struct Firewall: Sendable {
    public enum Backend: String, Sendable { case nftables, iptables }

    public let bridge: String
    public let subnet: Subnet
    public let backend: Backend

    public init(bridge: String, subnet: Subnet, backend: Backend? = nil) {
        self.bridge = bridge
        self.subnet = subnet
        let requested = getenv("SKIFF_FIREWALL").flatMap { Backend(rawValue: String(cString: $0)) }
        self.backend = backend ?? requested ?? (Tool.find("nft") != nil || Tool.find("iptables") == nil ? .nftables : .iptables)
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
        switch backend {
        case .nftables: try nft(tableScript, why: "NAT for the bridge: outbound masquerade and maps for published ports", kernel: kernel)
        case .iptables:
            for rule in iptablesBaseRules(.add) {
                try iptables(rule, why: "NAT for the bridge: outbound masquerade and a chain for published ports", kernel: kernel)
            }
        }
    }

    public func remove(kernel: Kernel) throws(SkiffError) {
        switch backend {
        case .nftables: try nft("delete table ip \(table)\n", why: "the last container left: remove the bridge's NAT table", kernel: kernel)
        case .iptables:
            for rule in iptablesBaseRules(.delete) {
                try? iptables(rule, why: "the last container left: remove the bridge's NAT rules", kernel: kernel)
            }
            removeEmptyNATTable(kernel: kernel)
        }
    }

    /// iptables-nft creates an nftables table `ip nat` with empty base chains the first time a nat
    /// rule is written, and never removes it. Once it holds no rule and no chain of anyone's, it
    /// does nothing: remove it, so that nothing of ours is left behind.
    private func removeEmptyNATTable(kernel: Kernel) {
        guard let iptables = Tool.find("iptables"), let nft = Tool.find("nft"),
            let version = try? Tool.run(iptables, ["--version"]), version.output.contains("nf_tables"),
            let rules = try? Tool.run(iptables, ["-w", "-t", "nat", "-S"]), rules.status == 0,
            rules.output.split(separator: "\n").allSatisfy({ $0.hasPrefix("-P ") })
        else { return }
        kernel.narrator.call("nft delete table ip nat", why: "iptables-nft's nat table is empty again")
        _ = try? Tool.run(nft, ["delete", "table", "ip", "nat"])
    }

    public func publish(_ ports: [PortMapping], to address: IPv4Address, kernel: Kernel) throws(SkiffError) {
        guard !ports.isEmpty else { return }
        switch backend {
        case .nftables: try nft(elementScript("add", ports: ports, address: address), why: "publish the container's ports", kernel: kernel)
        case .iptables:
            for port in ports { try iptables(dnatRule(.add, port, address), why: "publish \(port)", kernel: kernel) }
        }
    }

    public func withdraw(_ ports: [PortMapping], from address: IPv4Address, kernel: Kernel) throws(SkiffError) {
        guard !ports.isEmpty else { return }
        switch backend {
        case .nftables:
            try nft(elementScript("delete", ports: ports, address: address), why: "withdraw the container's ports", kernel: kernel)
        case .iptables:
            for port in ports { try iptables(dnatRule(.delete, port, address), why: "withdraw \(port)", kernel: kernel) }
        }
    }

    /// iptables's verbs for one rule: append, or delete the same rule.
    public enum RuleChange: String, Sendable {
        case add = "-A"
        case delete = "-D"
    }

    /// `SKIFF-BRIDGE`: the nat-table chain that holds this bridge's DNAT rules.
    public var chain: String { "SKIFF-" + bridge }

    /// The rules apart from published ports, in the order to add them (deleted in reverse,
    /// with the chain itself last).
    public func iptablesBaseRules(_ change: RuleChange) -> [[String]] {
        let rules: [[String]] = [
            ["-t", "nat", change.rawValue, "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain],
            ["-t", "nat", change.rawValue, "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", chain],
            ["-t", "nat", change.rawValue, "POSTROUTING", "-s", "\(subnet)", "!", "-o", bridge, "-j", "MASQUERADE"],
            ["-t", "nat", change.rawValue, "POSTROUTING", "-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"],
        ]
        switch change {
        case .add: return [["-t", "nat", "-N", chain]] + rules
        case .delete: return rules.reversed() + [["-t", "nat", "-F", chain], ["-t", "nat", "-X", chain]]
        }
    }

    public func dnatRule(_ change: RuleChange, _ port: PortMapping, _ address: IPv4Address) -> [String] {
        ["-t", "nat", change.rawValue, chain, "-p", port.transport.rawValue] + (port.hostAddress.map { ["-d", "\($0)"] } ?? [])
            + ["--dport", "\(port.hostPort)", "-j", "DNAT", "--to-destination", "\(address):\(port.containerPort)"]
    }

    private func iptables(_ arguments: [String], why: String, kernel: Kernel) throws(SkiffError) {
        guard let iptables = Tool.find("iptables") else {
            throw SkiffError(.setupFailed, "neither nft nor iptables is installed: install the nftables package (apt-get install nftables)")
        }
        kernel.narrator.call("iptables \(arguments.joined(separator: " "))", why: why)
        try runTool(iptables, ["-w"] + arguments, input: "")
    }

    /// Runs `nft -f -` with `script`; the design allows this one tool (DESIGN §2).
    private func nft(_ script: String, why: String, kernel: Kernel) throws(SkiffError) {
        guard let nft = Tool.find("nft") else {
            throw SkiffError(.setupFailed, "nft is not installed: install the nftables package (apt-get install nftables)")
        }
        kernel.narrator.call("nft -f - <<< \(script.split(separator: "\n").first.map(String.init) ?? "")...", why: why)
        try runTool(nft, ["-f", "-"], input: script)
    }

    private func runTool(_ path: String, _ arguments: [String], input: String) throws(SkiffError) {
        let result: Tool.Result
        do {
            result = try Tool.run(path, arguments, input: input)
        } catch {
            throw SkiffError(.setupFailed, "cannot run \(path)", cause: error)
        }
        guard result.status == 0 else {
            let detail = result.errorOutput.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw SkiffError(.setupFailed, "\(path.split(separator: "/").last ?? "") refused the rules (\(detail))")
        }
    }
}
