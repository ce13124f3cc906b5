// Lesson 05: the user namespace. The command is root inside and an unprivileged user outside.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffRootfs

@main
struct Lesson05User: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson05-user",
        abstract: "Run a command as root inside and an unprivileged user outside (a user namespace).")

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
        // Inside a user namespace mknod is refused, and sysfs belongs to the network namespace,
        // which the new user namespace does not own yet (lesson 06): borrow both from the host.
        plan.devices = .bindFromHost
        plan.sysfs = .bindFromHost
        let command = lesson.commandLine
        let environment = plan.environment(hostname: hostname.value)
        let useInit = self.`init`

        // The new layer: CLONE_NEWUSER. The kernel creates the user namespace first and makes it
        // the owner of the others, so the child's capabilities count in all of them, and only there.
        let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc]
        let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child whose root is not the host's root") { side in
            // Runs after the parent wrote the maps: until then uid 0 does not exist in here.
            try UserNamespace.becomeRoot(kernel: kernel)
            try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
            try Rootfs.enter(plan, kernel: kernel)  // lesson 03
            try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
            try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
        }
        // Only the parent, outside, may say which host ids the child's ids stand for.
        try child.start {
            try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)
        }
        return try child.wait()
    }
}
