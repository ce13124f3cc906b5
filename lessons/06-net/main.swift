// Lesson 06: the network namespace. The command gets a network stack of its own: no links but `lo`.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson06Net: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson06-net",
        abstract: "Run a command with a network stack of its own (a network namespace).")

    @Option(help: "The hostname inside.")
    var hostname = "skiff"

    @Option(help: "The directory that becomes / (default: the busybox sample).")
    var rootfs = RootfsPlan.sample

    @Option(help: "The host uid (and gid) that root inside maps to; 65536 ids are mapped from there.")
    var mapRootTo: UInt32 = 100000

    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).")
    var `init` = false

    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let mapping = try IDMapping(rootTo: mapRootTo)
        var plan = try RootfsPlan(validating: rootfs)
        plan.devices = .bindFromHost  // lesson 05
        // Owning its network namespace, the container may now mount a sysfs of its own, which
        // lists only its own network devices.
        plan.sysfs = .mount
        let command = lesson.commandLine
        let environment = plan.environment(hostname: hostname.value)
        let useInit = self.`init`

        // The new layer: CLONE_NEWNET. The new namespace has its own links, addresses, routes,
        // ports and firewall, and starts with a single link, lo, which is down.
        let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
        let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child with its own network stack") { side in
            try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
            try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
            try Rootfs.enter(plan, kernel: kernel)  // lesson 03
            try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
            try Link.bringUp("lo", kernel: kernel)
            try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
        }
        try child.start {
            try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
        }
        return try child.wait()
    }
}
