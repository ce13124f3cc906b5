// Lesson 04: the IPC namespace. System V shared memory, semaphores and message queues of the host
// are invisible inside, and the container's are invisible to the host.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffRootfs

@main
struct Lesson04IPC: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson04-ipc",
        abstract: "Run a command with IPC objects of its own (an IPC namespace).")

    @Option(help: "The hostname inside.")
    var hostname = "skiff"

    @Option(help: "The directory that becomes / (default: the busybox sample).")
    var rootfs = RootfsPlan.sample

    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).")
    var `init` = false

    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let plan = try RootfsPlan(validating: rootfs)
        let command = lesson.commandLine
        let environment = plan.environment(hostname: hostname.value)
        let useInit = self.`init`

        // The new layer: CLONE_NEWIPC. The new namespace starts with no IPC objects at all.
        let namespaces: NamespaceSet = [.uts, .pid, .mount, .ipc]
        let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child with its own IPC objects") { side in
            try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
            try Rootfs.enter(plan, kernel: kernel)  // lesson 03
            // POSIX message queues are the other half of IPC: give them a filesystem of their own.
            try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)
            try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
        }
        try child.start()
        return try child.wait()
    }
}
