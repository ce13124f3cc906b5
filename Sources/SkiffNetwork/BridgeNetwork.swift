@preconcurrency import Glibc
import SkiffKernel

/// Containers on one Linux bridge, the docker0 model: the bridge holds the gateway address;
/// each container gets a veth pair, one end plugged into the bridge, the other its `eth0`; the
/// host routes the subnet to the bridge and masquerades what leaves it.
///
/// The bridge and its NAT table exist while at least one container holds a lease: the first to
/// join creates them, the last to leave removes them.
public struct BridgeNetwork: Sendable {
    public let bridge: String
    public let subnet: Subnet
    public let addressBook: AddressBook
    public let firewall: Firewall

    public static let defaultBridge = "skiff0"
    public static let defaultSubnet = "10.88.0.0/16"
    public static let defaultStateDirectory = "/run/skiff/networks"

    public init(bridge: String = defaultBridge, subnet: Subnet, stateDirectory: String = defaultStateDirectory) throws(SkiffError) {
        guard (1...15).contains(bridge.utf8.count), bridge.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        else {
            throw SkiffError(.invalidInput, "invalid bridge name \"\(bridge)\": 1 to 15 letters, digits, '-', '_' or '.' (IFNAMSIZ)")
        }
        self.bridge = bridge
        self.subnet = subnet
        addressBook = AddressBook(directory: stateDirectory, bridge: bridge, subnet: subnet)
        firewall = Firewall(bridge: bridge, subnet: subnet)
    }

    /// Reserves an address for `name` and publishes its ports; brings the bridge and NAT up if
    /// this is the first container. Run in the parent before the container starts.
    public func join(name: String, ports: [PortMapping], kernel: Kernel) throws -> Lease {
        for (index, port) in ports.enumerated() {
            if let twin = ports[..<index].first(where: { $0.conflicts(with: port) }) {
                throw SkiffError(.invalidInput, "-p \(port) and -p \(twin) both want host port \(port.hostPort)/\(port.transport.rawValue)")
            }
        }
        return try addressBook.update { leases, reclaimed in
            for stale in reclaimed {
                kernel.narrator.note("\(stale.name) (\(stale.address)) belonged to process \(stale.ownerPID), which is gone: reclaiming it")
                try? firewall.withdraw(stale.ports, from: stale.address, kernel: kernel)
            }
            if let taken = leases.first(where: { $0.name == name }) {
                throw SkiffError(.invalidInput, "the name \(name) is taken on \(bridge) by process \(taken.ownerPID): pick another --name")
            }
            for port in ports {
                if let holder = leases.first(where: { $0.ports.contains { $0.conflicts(with: port) } }) {
                    throw SkiffError(
                        .invalidInput,
                        "port \(port.hostPort)/\(port.transport.rawValue) is already published by \(holder.name): pick another host port")
                }
            }
            if leases.isEmpty {
                try bringUp(kernel: kernel)
            } else {
                try checkSubnet()
            }
            let address = try addressBook.freeAddress(among: leases)
            do {
                try firewall.publish(ports, to: address, kernel: kernel)
            } catch {
                // The first container brought the bridge up: take it down again, as leave would.
                if leases.isEmpty { tearDown(kernel: kernel) }
                throw error
            }
            let lease = Lease(address: address, ownerPID: getpid(), name: name, ports: ports, hostsFile: nil)
            leases.append(lease)
            return lease
        }
    }

    /// Wires the container, whose first process is `containerPID`: a veth pair with `eth0` made
    /// right in its network namespace, the host end on the bridge, and inside the address and
    /// the default route via the bridge. Run in the parent while the container waits.
    public func attach(_ lease: Lease, containerPID: Int32, kernel: Kernel) throws(SkiffError) {
        let hostEnd = vethName(for: lease)
        do {
            try kernel.run(
                .netlink(RouteMessage.createVethPair(hostName: hostEnd, peerName: "eth0", peerNamespacePID: containerPID)),
                why: "a virtual cable: \(hostEnd) stays here, eth0 is born inside the container")
            try kernel.run(
                .netlink(RouteMessage.setMaster(link: hostEnd, bridgeIndex: try linkIndex(bridge), bridgeName: bridge)),
                why: "plug the host end into the bridge")
            try kernel.run(.netlink(RouteMessage.setFlags(link: hostEnd, up: true)), why: "and switch it on")
            let inside = try linkIndex("eth0", namespacePID: containerPID)
            try kernel.run(
                .netlink(
                    RouteMessage.addAddress(
                        lease.address, prefix: subnet.prefix, index: inside, link: "eth0", broadcast: subnet.broadcast,
                        namespacePID: containerPID)),
                why: "the container's address on the bridge's subnet")
            try kernel.run(.netlink(RouteMessage.setFlags(link: "eth0", up: true, namespacePID: containerPID)), why: "switch eth0 on")
            try kernel.run(
                .netlink(RouteMessage.addDefaultRoute(via: subnet.gateway, index: inside, link: "eth0", namespacePID: containerPID)),
                why: "everything else goes to the bridge, which routes and masquerades it")
        } catch {
            throw SkiffError(.setupFailed, "cannot connect the container to \(bridge)", cause: error)
        }
    }

    /// Gives up the lease: withdraws its ports, removes the host end of its veth if the kernel
    /// has not already (it does when the container's network namespace goes), and takes the
    /// bridge and NAT down if no container is left.
    public func leave(_ lease: Lease, kernel: Kernel) throws {
        try? kernel.run(.netlink(RouteMessage.deleteLink(vethName(for: lease))), why: "unplug the container (gone already if its netns is)")
        try addressBook.update { leases, reclaimed in
            leases.removeAll { $0.address == lease.address && $0.ownerPID == lease.ownerPID }
            for gone in reclaimed + [lease] { try? firewall.withdraw(gone.ports, from: gone.address, kernel: kernel) }
            if leases.isEmpty { tearDown(kernel: kernel) }
            try PeerHosts.write(leases)
        }
    }

    /// Records where the container's /etc/hosts is, and rewrites every container's list of the
    /// others, so that containers on the bridge find each other by name.
    public func register(hostsFile: String, for lease: Lease) throws {
        try addressBook.update { leases, _ in
            if let index = leases.firstIndex(where: { $0.address == lease.address && $0.ownerPID == lease.ownerPID }) {
                leases[index].hostsFile = hostsFile
            }
            try PeerHosts.write(leases)
        }
    }

    /// Removes the NAT table and the bridge: no container holds a lease any more.
    private func tearDown(kernel: Kernel) {
        try? firewall.remove(kernel: kernel)
        try? kernel.run(.netlink(RouteMessage.deleteLink(bridge)), why: "the last container left: remove the bridge")
    }

    /// A bridge that exists must have this subnet's gateway address: joining it with another
    /// subnet would give the container a gateway that is not there.
    private func checkSubnet() throws {
        guard let index = try? linkIndex(bridge) else { return }
        let addresses = (try? Link.addresses().filter { $0.index == index }) ?? []
        guard addresses.isEmpty || addresses.contains(where: { $0.address == subnet.gateway && $0.prefix == subnet.prefix }) else {
            throw SkiffError(
                .invalidInput,
                "the bridge \(bridge) exists with \(addresses.map(\.description).joined(separator: ", ")), not \(subnet.gateway)/\(subnet.prefix): use its subnet, or another --bridge"
            )
        }
    }

    /// The bridge with the gateway address, up; forwarding on; NAT installed. A bridge of this
    /// name may be there already (a crashed run): it is reused.
    private func bringUp(kernel: Kernel) throws {
        if (try? linkIndex(bridge)) == nil {
            if let clash = HostRoutes.read().first(where: { $0.device != bridge && $0.subnet.overlaps(subnet) }) {
                throw SkiffError(
                    .invalidInput, "subnet \(subnet) overlaps the host's route to \(clash.subnet) on \(clash.device): pick another --subnet"
                )
            }
            try kernel.run(.netlink(RouteMessage.createBridge(bridge)), why: "a virtual switch for the containers, like docker0")
            let index = try linkIndex(bridge)
            try kernel.run(
                .netlink(
                    RouteMessage.addAddress(subnet.gateway, prefix: subnet.prefix, index: index, link: bridge, broadcast: subnet.broadcast)),
                why: "the gateway address: containers route through it, and the host reaches them by it")
        }
        try kernel.run(.netlink(RouteMessage.setFlags(link: bridge, up: true)), why: "switch the bridge on")
        // Connections from 127.0.0.1 to a published port leave through the bridge.
        try kernel.run(
            .writeFile("/proc/sys/net/ipv4/conf/\(bridge)/route_localnet", contents: "1"),
            why: "let connections from 127.0.0.1 reach published ports through the bridge")
        // Global, and left on, as Docker does: other containers of the host may depend on it.
        try kernel.run(
            .writeFile("/proc/sys/net/ipv4/ip_forward", contents: "1"), why: "route between the bridge and the host's other links")
        try? firewall.remove(kernel: Kernel())
        try firewall.install(kernel: kernel)
    }

    /// The host end's name, from the lease: `sk` and 8 hex digits (IFNAMSIZ allows 15).
    func vethName(for lease: Lease) -> String {
        var hash: UInt32 = 2_166_136_261  // FNV-1a
        for byte in "\(bridge)/\(lease.name)/\(lease.ownerPID)".utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        let hex = String(hash, radix: 16)
        return "sk" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    func linkIndex(_ name: String, namespacePID: Int32? = nil) throws(SyscallError) -> Int32 {
        let answers = try RouteMessage.getLink(name, namespacePID: namespacePID).query()
        guard let index = answers.first.flatMap(RouteMessage.index(inLinkAnswer:)) else {
            throw SyscallError("RTM_GETLINK", path: name, errno: ENODEV)
        }
        return index
    }
}

/// The part of each container's /etc/hosts that lists the other containers on its bridge, below
/// a marker line. Rewritten in place (same inode): the file is bind-mounted into the container,
/// and a new file renamed over it would not be seen.
enum PeerHosts {
    static let marker = "# containers on this bridge (Skiff)"

    static func write(_ leases: [Lease]) throws {
        for lease in leases {
            guard let file = lease.hostsFile, let current = try? Files.readText(file) else { continue }
            var own = current.split(separator: "\n", omittingEmptySubsequences: false).prefix { $0 != marker }
            while own.last?.isEmpty == true { own.removeLast() }
            let peers = leases.filter { $0.name != lease.name }.map { "\($0.address)\t\($0.name)\n" }.joined()
            let text = own.joined(separator: "\n") + "\n" + (peers.isEmpty ? "" : marker + "\n" + peers)
            let fd = open(file, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }
}
