import ArgumentParser
// Lesson 10: container networking. A veth pair connects the container's network namespace to a
// bridge on the host; the host routes and masquerades for it, publishes its ports, and the
// containers on the bridge find each other by name.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLayers
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson10VethBridge: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson10-veth-bridge",
        abstract: "Run a command on a bridge network: an address, a route out, published ports, names.")

    @Option(help: "The container's name on the bridge (default: its hostname, or skiff-PID).") var name: String?
    @Option(name: [.customShort("p"), .long], help: "Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]; repeat.")
    var publish: [String] = []
    @Option(help: "The bridge to join.") var bridge = BridgeNetwork.defaultBridge
    @Option(help: "The bridge's subnet, used when the bridge is created.") var subnet = BridgeNetwork.defaultSubnet
    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "Hostname inside (default: the name).") var hostname: String?
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @Option(help: "A layer on top of the rootfs: a directory or a .tar/.tar.gz; repeat, bottom first.") var layer: [String] = []
    @Option(help: "A nameserver for /etc/resolv.conf instead of the host's; repeat for more.") var dns: [String] = []
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let name = try Hostname(validating: name ?? hostname ?? "skiff-\(getpid())")
        let hostname = try Hostname(validating: hostname ?? name.value)
        let mapping = try IDMapping(rootTo: mapRootTo)
        let limits = try limitOptions.limits()  // lesson 07
        try InitLayer.validateNameservers(dns)  // lesson 09
        let base = try RootfsPlan(validating: rootfs)
        let command = lesson.commandLine
        let useInit = self.`init`
        // The new layer's input, checked before anything is created.
        let ports = try publish.map { try PortMapping(parsing: $0) }
        let network = try BridgeNetwork(bridge: bridge, subnet: Subnet(parsing: subnet))

        try Mounts.isolateThisProcess(kernel: kernel)  // lesson 08
        // An address on the bridge, and the bridge itself if we are the first container.
        let lease = try network.join(name: name.value, ports: ports, kernel: kernel)
        defer { try? network.leave(lease, kernel: kernel) }
        let workspace = try UnionWorkspace(name: "lesson10", upper: nil)
        defer { try? workspace.remove() }
        let initLayer = try InitLayer(  // lesson 09, now with a real address
            in: workspace.root + "/init", hostname: hostname.value, address: lease.address.description,
            nameservers: dns.isEmpty ? nil : dns, owner: mapping.hostID)
        // Its /etc/hosts lists the other containers of the bridge, and theirs list it.
        try network.register(hostsFile: initLayer.files + "/hosts", for: lease)
        let lowers = try workspace.layers(base: base.path, sources: layer, opaqueXattr: .user, kernel: kernel) + [initLayer.layer]
        let stack = LayerStack(lowers: lowers, upper: workspace.upper, work: workspace.work)  // lesson 08
        let staged = try stack.staged(
            under: workspace.stage, mapping: MappingHolder(uid: mapping, gid: mapping, kernel: kernel), kernel: kernel)
        defer { staged.unstage(kernel: kernel) }
        var plan = try RootfsPlan(validating: workspace.merged)
        plan.devices = .bindFromHost  // lesson 05

        let environment = plan.environment(hostname: hostname.value)
        let cgroup = try Cgroups.open(name: "lesson10-\(getpid())", limits: limits, layout: .host(), kernel: kernel)
        let (status, counters) = try cgroup.around {  // lesson 07
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child whose network is wired from outside") { side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
                try staged.stack.mount(at: plan.path, inUserNamespace: true, kernel: kernel)  // lesson 08
                try initLayer.bindFiles(into: plan.path, kernel: kernel)  // lesson 09
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06
                try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
            }
            try child.start {
                try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
                try cgroup.add(child.pid)  // lesson 07
                // The new layer: the veth pair, eth0's address and the route, made from out here
                // while the container waits, so its command starts with the network ready.
                try network.attach(lease, containerPID: child.pid, kernel: kernel)
            }
            return try child.wait()
        }
        limitOptions.report(counters, limits: limits).forEach { say($0) }
        return status
    }
}
