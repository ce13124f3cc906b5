// Lesson 03: the mount namespace and pivot_root. The command gets a root filesystem of its own;
// the host's files are out of reach.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffRootfs

@main
struct Lesson03Mount: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson03-mount",
        abstract: "Run a command in its own root filesystem (mount namespace + pivot_root).")

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

        let namespaces: NamespaceSet = [.uts, .pid, .mount]
        let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child with its own mount table") { side in
            try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01

            // The new layer, step by step. Everything is mounted under the new root first,
            // while the host's paths can still be named, then pivot_root swaps the roots.
            try Mounts.makePrivate(kernel: kernel)
            try Rootfs.bindToItself(plan, kernel: kernel)
            try Rootfs.mountProc(plan, kernel: kernel)
            try Rootfs.mountSys(plan, kernel: kernel)
            try Rootfs.populateDev(plan, kernel: kernel)
            try Rootfs.pivot(into: plan, kernel: kernel)

            if useInit {  // lesson 02
                PIDNamespace.runInit(command, environment: environment, side: side, kernel: kernel)
            }
            try PIDNamespace.execAsPID1(command, environment: environment, kernel: kernel)
        }
        try child.start()
        return try child.wait()
    }
}
