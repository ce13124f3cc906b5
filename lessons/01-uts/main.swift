// Lesson 01: the UTS namespace. The command runs in a child process that has a hostname of its own.
import ArgumentParser
import SkiffKernel
import SkiffLesson
import SkiffNamespaces

@main
struct Lesson01UTS: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson01-uts",
        abstract: "Run a command with a hostname of its own (a UTS namespace).")

    @Option(help: "The hostname inside.")
    var hostname = "skiff"

    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        // Check the input before anything is created.
        let hostname = try Hostname(validating: hostname)
        let command = lesson.commandLine

        // The new layer. clone(2) with CLONE_NEWUTS starts a child in a new UTS namespace: a copy
        // of the host's hostname that the child may change without touching the host's.
        let child = try ContainerProcess.clone([.uts], kernel: kernel, why: "a child with its own UTS namespace") { _ in
            try UTSNamespace.setHostname(hostname, kernel: kernel)
            try kernel.exec(command, environment: hostEnvironment, why: "become the command, keeping the new hostname")
        }

        // The child waits for this go, so that later lessons have a moment to prepare it.
        try child.start()
        // Until the command ends, signals sent to us (kill, Ctrl-\) are forwarded to it.
        return try child.wait()
    }
}
