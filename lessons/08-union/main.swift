import ArgumentParser
// Lesson 08: the union filesystem. An image is a stack of read-only layers; the container writes
// to one more layer on top, and deletes by hiding (whiteouts).
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLayers
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson08Union: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson08-union",
        abstract: "Run a command on a stack of layers with a writable layer on top (overlayfs).")

    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "Hostname inside.") var hostname = "skiff"
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @Option(help: "A layer on top of the rootfs: a directory or a .tar/.tar.gz; repeat, bottom first.") var layer: [String] = []
    @Option(help: "Keep the writable layer in this directory after exit.") var upper: String?
    @Option(help: "Print what the writable layer UPPER changes, as `docker diff` does, and exit.") var diff: String?
    @Option(parsing: .upToNextOption, help: "UPPER OUT.tar.gz: write UPPER as an OCI layer, print its digests, and exit.")
    var exportLayer: [String] = []
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let mapping = try IDMapping(rootTo: mapRootTo)
        let limits = try limitOptions.limits()  // lesson 07
        let command = lesson.commandLine
        let useInit = self.`init`
        let base = try RootfsPlan(validating: rootfs)

        // Looking at a writable layer needs no container: it is a directory of changes.
        if let upper = diff {
            guard Files.exists(upper) else {
                throw SkiffError(.invalidInput, "--diff \(upper): no such directory: give the writable layer kept with --upper")
            }
            let workspace = try UnionWorkspace(name: "lesson08-diff", upper: nil)
            defer { try? workspace.remove() }
            let lowers = try workspace.layers(base: base.path, sources: layer, opaqueXattr: .user, kernel: kernel)
            try LayerDiff.changes(upper: upper, lowers: lowers).forEach { print($0) }
            return .exited(0)
        }
        if !exportLayer.isEmpty {
            guard exportLayer.count == 2 else { throw SkiffError(.invalidInput, "--export-layer takes two paths: UPPER OUT.tar.gz") }
            let file = try LayerCreator.create(from: exportLayer[0], to: exportLayer[1])
            print("\(file.path)\n  diff_id \(file.diffID)\n  digest  \(file.digest)\n  size    \(file.size)")
            return .exited(0)
        }

        // The new layer. Our own mount table first: the staging mounts below must never show up
        // on the host, and they disappear with this process whatever happens.
        try Mounts.isolateThisProcess(kernel: kernel)
        let workspace = try UnionWorkspace(name: "lesson08", upper: upper)
        defer { try? workspace.remove() }
        // Tar layers are unpacked (whiteouts to overlay form); directories are used as they are.
        // The overlay is mounted inside the container's user namespace, so its marks are user.*.
        let lowers = try workspace.layers(base: base.path, sources: layer, opaqueXattr: .user, kernel: kernel)
        let stack = LayerStack(lowers: lowers, upper: workspace.upper, work: workspace.work)
        // Files owned by uid 0 on disk must be the container's root's: idmapped mounts shift
        // them through the same mapping as the container's user namespace (lesson 05).
        let staged = try stack.staged(
            under: workspace.stage, mapping: MappingHolder(uid: mapping, gid: mapping, kernel: kernel), kernel: kernel)
        defer { staged.unstage(kernel: kernel) }
        var plan = try RootfsPlan(validating: workspace.merged)
        plan.devices = .bindFromHost  // lesson 05

        let environment = plan.environment(hostname: hostname.value)
        let cgroup = try Cgroups.open(name: "lesson08-\(getpid())", limits: limits, layout: .host(), kernel: kernel)
        let (status, counters) = try cgroup.around {  // lesson 07
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child that will mount the union as its root") {
                side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
                // The union, mounted by the container's root in its own user namespace.
                try staged.stack.mount(at: plan.path, inUserNamespace: true, kernel: kernel)
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
