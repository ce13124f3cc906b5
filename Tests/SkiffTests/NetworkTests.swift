import Foundation
import Testing

@testable import SkiffKernel
@testable import SkiffNetwork

@Suite("lesson 10: addresses, ports, leases, rules and messages")
struct Lesson10NetworkPureTests {
    @Test("subnets parse from CIDR, know their gateway, broadcast and hosts, and detect overlaps")
    func subnets() throws {
        let subnet = try Subnet(parsing: "10.88.0.0/16")
        #expect(subnet.gateway.description == "10.88.0.1")
        #expect(subnet.broadcast.description == "10.88.255.255")
        #expect(IPv4Address(subnet.hosts.lowerBound).description == "10.88.0.2")
        #expect(subnet.contains(IPv4Address("10.88.7.9")!))
        #expect(subnet.overlaps(try Subnet(parsing: "10.0.0.0/8")))
        #expect(!subnet.overlaps(try Subnet(parsing: "10.89.0.0/16")))
        for bad in ["10.88.0.0", "10.88.0.0/33", "10.88.0.0/4", "10.88.0.1/16", "300.0.0.0/8", "10.088.0.0/16"] {
            #expect(throws: SkiffError.self, "\(bad)") { try Subnet(parsing: bad) }
        }
    }

    @Test("-p specs parse like docker's and conflicts are found")
    func portMappings() throws {
        let plain = try PortMapping(parsing: "8080:80")
        #expect(plain == PortMapping(hostPort: 8080, containerPort: 80))
        #expect(try PortMapping(parsing: "127.0.0.1:53:5353/udp").description == "127.0.0.1:53:5353/udp")
        #expect(try PortMapping(parsing: "0.0.0.0:8080:80").hostAddress == nil)
        for bad in ["99999:80", "80", "a:80", "8080:0", "8080:80/sctp", "1.2.3:8080:80", ":80"] {
            #expect(throws: SkiffError.self, "\(bad)") { try PortMapping(parsing: bad) }
        }
        #expect(plain.conflicts(with: try PortMapping(parsing: "127.0.0.1:8080:81")))
        #expect(!plain.conflicts(with: try PortMapping(parsing: "8080:80/udp")))
        #expect(!(try PortMapping(parsing: "127.0.0.1:8080:80")).conflicts(with: try PortMapping(parsing: "192.0.2.1:8080:80")))
    }

    @Test("host routes come from /proc/net/route, with addresses in the kernel's byte order")
    func hostRoutes() {
        let text = """
            Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
            """
        #expect(
            HostRoutes.parse(text) == [HostRoutes.Route(device: "eth0", subnet: Subnet(network: IPv4Address("192.0.2.0")!, prefix: 24))])
    }

    @Test("the NAT table masquerades the subnet and maps published ports; elements come and go")
    func firewallScripts() throws {
        let firewall = Firewall(bridge: "skiff0", subnet: try Subnet(parsing: "10.88.0.0/16"), backend: .nftables)
        #expect(firewall.table == "skiff_skiff0")
        #expect(firewall.tableScript.contains("ip saddr 10.88.0.0/16 oifname != \"skiff0\" masquerade"))
        #expect(firewall.tableScript.contains("fib daddr type local dnat ip to meta l4proto . th dport map @published"))
        let ports = [try PortMapping(parsing: "8080:80"), try PortMapping(parsing: "127.0.0.1:5353:53/udp")]
        #expect(
            firewall.elementScript("add", ports: ports, address: IPv4Address("10.88.0.2")!) == """
                add element ip skiff_skiff0 published { tcp . 8080 : 10.88.0.2 . 80 }
                add element ip skiff_skiff0 published_on { 127.0.0.1 . udp . 5353 : 10.88.0.2 . 53 }

                """)
        #expect(
            firewall.elementScript("delete", ports: ports, address: IPv4Address(0)).contains(
                "delete element ip skiff_skiff0 published { tcp . 8080 }"))
    }

    @Test("rtnetlink messages: a veth whose peer is born in another netns, an address, a default route")
    func messages() throws {
        let veth = RouteMessage.createVethPair(hostName: "sk1", peerName: "eth0", peerNamespacePID: 4242).message
        // nlmsghdr: RTM_NEWLINK with REQUEST|ACK|EXCL|CREATE.
        #expect(veth.loadLittleEndian(UInt16.self, at: 4) == 16)
        #expect(veth.loadLittleEndian(UInt16.self, at: 6) == 0x605)
        #expect(Int(veth.loadLittleEndian(UInt32.self, at: 0)) == veth.count)
        // The peer's IFLA_NET_NS_PID (type 19) carries the pid.
        let pid = RouteMessage.attribute(19, RouteMessage.bytes(UInt32(4242)))
        #expect(veth.indices.contains { veth[$0...].starts(with: pid) })
        #expect(veth.indices.contains { veth[$0...].starts(with: Array("veth".utf8) + [0]) })
        let address = RouteMessage.addAddress(
            IPv4Address("10.88.0.2")!, prefix: 16, index: 2, link: "eth0", broadcast: IPv4Address("10.88.255.255")!
        ).message
        #expect(Array(address[16..<24]) == [2, 16, 0, 0, 2, 0, 0, 0], "ifaddrmsg: AF_INET, /16, index 2")
        #expect(Array(address[24..<32]) == [8, 0, 2, 0, 10, 88, 0, 2], "IFA_LOCAL 10.88.0.2")
        let route = RouteMessage.addDefaultRoute(via: IPv4Address("10.88.0.1")!, index: 2, link: "eth0").message
        #expect(Array(route[16..<28]) == [2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0], "rtmsg: main table, boot, universe, unicast")
        #expect(Array(route[28..<36]) == [8, 0, 5, 0, 10, 88, 0, 1], "RTA_GATEWAY 10.88.0.1")
    }

    @Test("concurrent leases never share an address, and a dead owner's lease is reclaimed")
    func addressBook() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-leases-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let book = AddressBook(directory: directory, bridge: "sktest", subnet: try Subnet(parsing: "10.213.0.0/24"))
        let addresses = try (0..<24).map { index in
            try book.update { leases, _ in
                let address = try book.freeAddress(among: leases)
                leases.append(Lease(address: address, ownerPID: getpid(), name: "c\(index)", ports: [], hostsFile: nil))
                return address
            }
        }
        #expect(Set(addresses).count == 24)
        // A lease whose process is gone is handed to the next update as reclaimed.
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        try book.update { leases, _ in
            leases.append(
                Lease(address: IPv4Address("10.213.0.250")!, ownerPID: finished.processIdentifier, name: "ghost", ports: [], hostsFile: nil)
            )
        }
        let reclaimed = try book.update { _, reclaimed in reclaimed.map(\.name) }
        #expect(reclaimed == ["ghost"])
        #expect(try book.read().count == 24)
    }

    @Test("leases are taken under a lock: processes in parallel get different addresses")
    func parallelLeases() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-leases-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let subnet = try Subnet(parsing: "10.213.0.0/24")
        let addresses = try await withThrowingTaskGroup(of: IPv4Address.self) { group in
            for index in 0..<16 {
                group.addTask {
                    let book = AddressBook(directory: directory, bridge: "sktest", subnet: subnet)
                    return try book.update { leases, _ in
                        let address = try book.freeAddress(among: leases)
                        leases.append(Lease(address: address, ownerPID: getpid(), name: "p\(index)", ports: [], hostsFile: nil))
                        return address
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(addresses).count == 16)
    }
}

@Suite("lesson 10: rtnetlink against the real kernel", .enabled(if: Host.isRoot, "needs root"))
struct Lesson10NetlinkTests {
    @Test("links and addresses are listed by dump, as ip link and ip addr would show them")
    func listing() throws {
        let links = try Link.list()
        let loopback = try #require(links.first { $0.name == "lo" })
        #expect(loopback.index == 1 && loopback.isUp)
        #expect(Set(links.map(\.name)) == Set(try Files.names(in: "/sys/class/net")))
        let addresses = try Link.addresses()
        #expect(addresses.contains { $0.index == 1 && $0.description == "127.0.0.1/8" })
    }

    @Test("a bridge is created, renamed, given an MTU and deleted, with errors that name the operation")
    func bridgeLifecycle() throws {
        let kernel = Kernel()
        try kernel.run(.netlink(RouteMessage.createBridge("sktest-br")), why: "test")
        defer { try? kernel.run(.netlink(RouteMessage.deleteLink("sktest-br")), why: "test") }
        defer { try? kernel.run(.netlink(RouteMessage.deleteLink("sktest-br2")), why: "test") }
        #expect {
            try kernel.run(.netlink(RouteMessage.createBridge("sktest-br")), why: "test")
        } throws: { error in
            "\(error)" == "RTM_NEWLINK sktest-br kind bridge: File exists"
        }
        try kernel.run(.netlink(RouteMessage.setMTU(link: "sktest-br", mtu: 1400)), why: "test")
        #expect(try Files.readText("/sys/class/net/sktest-br/mtu") == "1400\n")
        let index = try #require(try Link.list().first { $0.name == "sktest-br" }?.index)
        try kernel.run(.netlink(RouteMessage.rename(index: index, to: "sktest-br2")), why: "test")
        #expect(try Link.list().contains { $0.name == "sktest-br2" && $0.index == index })
        try kernel.run(.netlink(RouteMessage.deleteLink("sktest-br2")), why: "test")
        #expect(!(try Link.list().contains { $0.index == index }))
    }
}
