import ArgumentParser
// Lesson 11: what keeps root in a container from being root on the host: a small capability set,
// a seccomp filter, no_new_privs, hidden and read-only parts of /proc and /sys, device rules.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLayers
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs
import SkiffSecurity

@main
struct Lesson11Security: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson11-security",
        abstract: "Run a command with capabilities, seccomp, no_new_privs and protected paths, as Docker does.")

    @Option(help: "Add a capability (NAME or CAP_NAME, or ALL); repeat.") var capAdd: [String] = []
    @Option(help: "Drop a capability (NAME or CAP_NAME, or ALL); repeat.") var capDrop: [String] = []
    @Option(help: "unconfined, or a seccomp profile file in Docker's JSON format (default: Docker's default in effect).")
    var seccomp: String?
    @Option(help: "Run as UID[:GID] or NAME[:GROUP] of the container's /etc/passwd.") var user: String?
    @Option(help: "A resource limit NAME=SOFT[:HARD], e.g. nofile=1024:2048; repeat.") var ulimit: [String] = []
    @Flag(help: "Make the root filesystem read-only.") var readOnly = false
    @Flag(help: "Let execve grant privileges (setuid, file capabilities): no_new_privs off.") var allowNewPrivileges = false
    @Option(help: "The container's name on the bridge (default: skiff-PID).") var name: String?
    @Option(name: [.customShort("p"), .long], help: "Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].") var publish: [String] = []
    @Option(help: "The bridge to join.") var bridge = BridgeNetwork.defaultBridge
    @Option(help: "The bridge's subnet.") var subnet = BridgeNetwork.defaultSubnet
    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @Option(help: "A layer on top of the rootfs; repeat, bottom first.") var layer: [String] = []
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let name = try Hostname(validating: name ?? "skiff-\(getpid())")
        let mapping = try IDMapping(rootTo: mapRootTo)
        var limits = try limitOptions.limits()  // lesson 07
        let ports = try publish.map { try PortMapping(parsing: $0) }  // lesson 10
        let network = try BridgeNetwork(bridge: bridge, subnet: Subnet(parsing: subnet))
        let base = try RootfsPlan(validating: rootfs)
        let command = lesson.commandLine
        let useInit = self.`init`
        // The new layer's input, all checked before anything exists. The seccomp filter is
        // compiled here, in the parent; the child only loads the bytes.
        let capabilities = try CapabilitySet.adjusted(adding: capAdd, dropping: capDrop)
        let filter =
            try seccomp == "unconfined"
            ? nil : (seccomp.map(SeccompProfile.load) ?? .containerDefault).resolved(for: capabilities).compile()
        let userSpec = try user.map(UserSpec.init(parsing:))
        let resourceLimits = try ulimit.map(ResourceLimitSpec.init(parsing:))
        let noNewPrivileges = !allowNewPrivileges
        limits.deviceRules = ResourceLimits.containerDevices

        try Mounts.isolateThisProcess(kernel: kernel)  // lesson 08
        let lease = try network.join(name: name.value, ports: ports, kernel: kernel)  // lesson 10
        defer { try? network.leave(lease, kernel: kernel) }
        let workspace = try UnionWorkspace(name: "lesson11", upper: nil)
        defer { try? workspace.remove() }
        let initLayer = try InitLayer(
            in: workspace.root + "/init", hostname: name.value, address: lease.address.description, nameservers: nil, owner: mapping.hostID)
        try network.register(hostsFile: initLayer.files + "/hosts", for: lease)
        let lowers = try workspace.layers(base: base.path, sources: layer, opaqueXattr: .user, kernel: kernel) + [initLayer.layer]
        let stack = LayerStack(lowers: lowers, upper: workspace.upper, work: workspace.work)
        let staged = try stack.staged(
            under: workspace.stage, mapping: MappingHolder(uid: mapping, gid: mapping, kernel: kernel), kernel: kernel)
        defer { staged.unstage(kernel: kernel) }
        var plan = try RootfsPlan(validating: workspace.merged)
        plan.devices = .bindFromHost  // lesson 05

        let environment = plan.environment(hostname: name.value)
        let cgroup = try Cgroups.open(name: "lesson11-\(getpid())", limits: limits, layout: .host(), kernel: kernel)
        let (status, counters) = try cgroup.around {  // lesson 07
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child that gives up its privileges before exec") {
                side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(name, kernel: kernel)  // lesson 01
                try staged.stack.mount(at: plan.path, inUserNamespace: true, kernel: kernel)  // lesson 08
                try initLayer.bindFiles(into: plan.path, kernel: kernel)  // lesson 09
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06

                // The new layer, in order. Paths are hidden while we may still mount; limits are
                // set while CAP_SYS_RESOURCE may still raise them; the bounding set shrinks
                // while CAP_SETPCAP allows it; then the user switch; then the capabilities a
                // root user keeps; no_new_privs; and the seccomp filter last, so that nothing
                // above needs a syscall it forbids. Without no_new_privs, loading a filter takes
                // CAP_SYS_ADMIN, so it goes in before the capabilities are dropped.
                try ProtectedPaths.mask(kernel: kernel)
                try ProtectedPaths.makeReadOnly(kernel: kernel)
                if readOnly { try ProtectedPaths.makeRootReadOnly(kernel: kernel) }
                for limit in resourceLimits { try limit.apply(kernel: kernel) }
                if !noNewPrivileges, let filter { try Seccomp.load(filter, kernel: kernel) }
                try Capabilities.limitBoundingSet(to: capabilities, kernel: kernel)
                if let userSpec {
                    let passwd = (try? Files.readText("/etc/passwd")) ?? "", groups = (try? Files.readText("/etc/group")) ?? ""
                    let resolved = try userSpec.resolve(passwd: passwd, group: groups)
                    try kernel.switchUser(
                        uid: resolved.uid, gid: resolved.gid, groups: resolved.supplementaryGroups,
                        why: "--user: the kernel clears the capabilities of a non-root user")
                }
                if userSpec == nil { try Capabilities.set(capabilities, kernel: kernel) }
                if noNewPrivileges { try kernel.run(.setNoNewPrivileges, why: "execve can never raise privileges again") }
                if noNewPrivileges, let filter { try Seccomp.load(filter, kernel: kernel) }
                try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
            }
            try child.start {
                try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
                try cgroup.add(child.pid)  // lesson 07
                try network.attach(lease, containerPID: child.pid, kernel: kernel)  // lesson 10
            }
            return try child.wait()
        }
        limitOptions.report(counters, limits: limits).forEach { say($0) }
        return status
    }
}
