// Lesson 02: the PID namespace. The command is PID 1 of its own process tree and sees only it.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffRootfs

@main
struct Lesson02PID: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson02-pid",
        abstract: "Run a command as PID 1 of a new PID namespace, with its own /proc.")

    @Option(help: "The hostname inside.")
    var hostname = "skiff"

    @Flag(help: "Run a tiny init as PID 1 that forwards signals and reaps zombies; the command is PID 2.")
    var `init` = false

    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let command = lesson.commandLine
        let useInit = self.`init`

        // The new layer: CLONE_NEWPID makes the child PID 1 of a new PID namespace. A mount
        // namespace comes along (lesson 03 explains it) because /proc must be mounted again to
        // show the new namespace, and that mount must not replace the host's /proc.
        let namespaces: NamespaceSet = [.uts, .pid, .mount]
        let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "PID 1 of a new PID namespace") { side in
            try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
            try Mounts.makePrivate(kernel: kernel)
            try Mounts.mountProc(at: "/proc", kernel: kernel)
            if useInit {
                PIDNamespace.runInit(command, environment: hostEnvironment, side: side, kernel: kernel)
            }
            try PIDNamespace.execAsPID1(command, environment: hostEnvironment, kernel: kernel)
        }
        try child.start()
        return try child.wait()
    }
}
