import ArgumentParser
// Lesson 12: images. An image is a stack of layer tars and a config, addressed by digests and
// named by repository:tag; a registry serves them over HTTP. The container's root is the
// image's layers, unpacked once and shared, and its process comes from the image's config.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffImage
import SkiffKernel
import SkiffLayers
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs
import SkiffSecurity

@main
struct Lesson12Images: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson12-images",
        abstract: "Run an image: pulled from a registry, its layers unpacked once and shared, its config applied.")

    @Option(help: "The image: NAME[:TAG], NAME@DIGEST or an image id of the store.") var image: String
    @Flag(help: "Pull the image from its registry first, even when the store has it.") var pull = false
    @Option(help: "The image store (default: $SKIFF_ROOT, else /var/lib/skiff).") var store = ImageStore.defaultRoot
    @Option(help: "Registries reached over plain HTTP besides localhost; repeat.") var insecureRegistry: [String] = []
    @Option(name: [.customShort("e"), .long], help: "Set NAME=VALUE in the environment, over the image's; repeat.") var env: [String] = []
    @Option(help: "Run as UID[:GID] or NAME[:GROUP] (default: the image's User).") var user: String?
    @Option(help: "The container's name on the bridge (default: skiff-PID).") var name: String?
    @Option(name: [.customShort("p"), .long], help: "Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].") var publish: [String] = []
    @Option(help: "The bridge to join.") var bridge = BridgeNetwork.defaultBridge
    @Option(help: "The bridge's subnet.") var subnet = BridgeNetwork.defaultSubnet
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let name = try Hostname(validating: name ?? "skiff-\(getpid())")
        let mapping = try IDMapping(rootTo: mapRootTo)
        var limits = try limitOptions.limits()  // lesson 07
        limits.deviceRules = ResourceLimits.containerDevices  // lesson 11
        let ports = try publish.map { try PortMapping(parsing: $0) }  // lesson 10
        let network = try BridgeNetwork(bridge: bridge, subnet: Subnet(parsing: subnet))
        let filter = try SeccompProfile.containerDefault.resolved(for: .containerDefault).compile()  // lesson 11
        let useInit = self.`init`

        // The new layer: the image. Found in the store by name, digest or id, or pulled from its
        // registry; its layers unpacked once each, by chain id, into directories every
        // container of every image with the same bottom layers shares.
        try Mounts.isolateThisProcess(kernel: kernel)  // lesson 08, before any thread exists
        let images = ImageStore(root: store)
        if pull || (try? images.resolve(image)) == nil {
            let reference = try Reference(parsing: image)
            let client = RegistryClient(registry: reference.registry, settings: RegistrySettings(insecureRegistries: Set(insecureRegistry)))
            let pulled = try images.pull(reference, with: client)
            say("pulled \(reference) as \(pulled.manifestDigest)")
        }
        let stored = try images.resolve(image)
        let imageLayers = try images.unpack(stored)
        kernel.narrator.note("image \(stored.id.short): \(imageLayers.count) layers, bottom first: \(imageLayers.joined(separator: " "))")
        let process = try ImageProcess(
            config: stored.config, command: lesson.command.isEmpty ? nil : lesson.command, environment: env, user: user,
            hostname: name.value)

        let lease = try network.join(name: name.value, ports: ports, kernel: kernel)  // lesson 10
        defer { try? network.leave(lease, kernel: kernel) }
        let workspace = try UnionWorkspace(name: "lesson12", upper: nil)
        defer { try? workspace.remove() }
        let initLayer = try InitLayer(
            in: workspace.root + "/init", hostname: name.value, address: lease.address.description, nameservers: nil, owner: mapping.hostID)
        try network.register(hostsFile: initLayer.files + "/hosts", for: lease)
        let stack = LayerStack(lowers: imageLayers + [initLayer.layer], upper: workspace.upper, work: workspace.work)
        let staged = try stack.staged(
            under: workspace.stage, mapping: MappingHolder(uid: mapping, gid: mapping, kernel: kernel), kernel: kernel)
        defer { staged.unstage(kernel: kernel) }
        var plan = try RootfsPlan(validating: workspace.merged)
        plan.devices = .bindFromHost  // lesson 05

        let cgroup = try Cgroups.open(name: "lesson12-\(getpid())", limits: limits, layout: .host(), kernel: kernel)
        let (status, counters) = try cgroup.around {  // lesson 07
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "the container of the image") { side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(name, kernel: kernel)  // lesson 01
                try staged.stack.mount(at: plan.path, inUserNamespace: true, kernel: kernel)  // lesson 08
                try initLayer.bindFiles(into: plan.path, kernel: kernel)  // lesson 09
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06
                try ProtectedPaths.mask(kernel: kernel)  // lesson 11
                try ProtectedPaths.makeReadOnly(kernel: kernel)
                try Capabilities.limitBoundingSet(to: .containerDefault, kernel: kernel)
                // The image's user, looked up in the image's own /etc/passwd: names mean what
                // the image says they mean, not what the host says.
                if let user = process.user {
                    let passwd = (try? Files.readText("/etc/passwd")) ?? "", groups = (try? Files.readText("/etc/group")) ?? ""
                    let resolved = try UserSpec(parsing: user).resolve(passwd: passwd, group: groups)
                    try kernel.switchUser(
                        uid: resolved.uid, gid: resolved.gid, groups: resolved.supplementaryGroups,
                        why: "the image's user (--user overrides)")
                } else {
                    try Capabilities.set(.containerDefault, kernel: kernel)
                }
                try kernel.run(.chdir(process.workingDirectory), why: "the image's WorkingDir")
                try kernel.run(.setNoNewPrivileges, why: "execve can never raise privileges again")
                try Seccomp.load(filter, kernel: kernel)
                try PIDNamespace.run(process.args, environment: process.environment, withInit: useInit, side: side, kernel: kernel)
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
