import ArgumentParser
// Lesson 09: the init layer. /etc/hosts, /etc/hostname and /etc/resolv.conf belong to this
// container, not to its image: they are written fresh for every container, can be changed while
// it runs, and never show up in a diff or a committed image.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLayers
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson09InitLayer: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson09-init-layer",
        abstract: "Run a command on a union of layers with an init layer for /etc/hosts, hostname and resolv.conf.")

    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "Hostname inside.") var hostname = "skiff"
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @Option(help: "A layer on top of the rootfs: a directory or a .tar/.tar.gz; repeat, bottom first.") var layer: [String] = []
    @Option(help: "Keep the writable layer in this directory after exit.") var upper: String?
    @Option(help: "A nameserver for /etc/resolv.conf instead of the host's; repeat for more.") var dns: [String] = []
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let mapping = try IDMapping(rootTo: mapRootTo)
        let limits = try limitOptions.limits()  // lesson 07
        try InitLayer.validateNameservers(dns)
        let base = try RootfsPlan(validating: rootfs)
        let command = lesson.commandLine
        let useInit = self.`init`

        try Mounts.isolateThisProcess(kernel: kernel)  // lesson 08
        let workspace = try UnionWorkspace(name: "lesson09", upper: upper)
        defer { try? workspace.remove() }
        // The new layer: this container's own files, and a layer of placeholders for them, put
        // between the image's layers and the writable layer.
        let initLayer = try InitLayer(
            in: workspace.root + "/init", hostname: hostname.value, address: nil,
            nameservers: dns.isEmpty ? nil : dns, owner: mapping.hostID)
        let lowers = try workspace.layers(base: base.path, sources: layer, opaqueXattr: .user, kernel: kernel) + [initLayer.layer]
        let stack = LayerStack(lowers: lowers, upper: workspace.upper, work: workspace.work)  // lesson 08
        let staged = try stack.staged(
            under: workspace.stage, mapping: MappingHolder(uid: mapping, gid: mapping, kernel: kernel), kernel: kernel)
        defer { staged.unstage(kernel: kernel) }
        var plan = try RootfsPlan(validating: workspace.merged)
        plan.devices = .bindFromHost  // lesson 05

        let environment = plan.environment(hostname: hostname.value)
        let cgroup = try Cgroups.open(name: "lesson09-\(getpid())", limits: limits, layout: .host(), kernel: kernel)
        let (status, counters) = try cgroup.around {  // lesson 07
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child with a union root and files of its own") {
                side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
                try staged.stack.mount(at: plan.path, inUserNamespace: true, kernel: kernel)  // lesson 08
                // Over the placeholders, after the union is mounted and before pivot_root, while
                // the files can still be named by their host paths.
                try initLayer.bindFiles(into: plan.path, kernel: kernel)
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06
                try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
            }
            try child.start {
                try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
                try cgroup.add(child.pid)  // lesson 07
            }
            return try child.wait()
        }
        limitOptions.report(counters, limits: limits).forEach { say($0) }
        return status
    }
}
