import ArgumentParser
@preconcurrency import Glibc
import SkiffKernel

/// The options every lesson shares (shared/DESIGN.md §4):
/// `lessonNN-topic [layer options] [--explain] [--step] [-- CMD [ARGS...]]`.
public struct LessonOptions: ParsableArguments {
    @Flag(help: "Print each kernel call with its real arguments and why, as it happens.")
    public var explain = false

    @Flag(help: "Like --explain, and wait for Enter before each call.")
    public var step = false

    @Argument(parsing: .postTerminator, help: "The command to run, after --. Default: /bin/sh.")
    public var command: [String] = []

    public init() {}

    /// The command line to run: what follows `--`, or a shell.
    public var commandLine: [String] { command.isEmpty ? ["/bin/sh"] : command }

    public var kernel: Kernel {
        Kernel(narrator: Narrator(mode: step ? .step : explain ? .explain : .silent))
    }
}

/// A lesson executable: it runs the command with its isolation and exits with the command's
/// status (128+N when signal N killed it). Its own errors print as `lessonNN-topic: message` and
/// exit 125; a command that cannot be run exits 126 or 127, as with `docker run`.
public protocol Lesson: ParsableCommand {
    var lesson: LessonOptions { get }
    /// Runs the command; returns how it ended.
    func run(kernel: Kernel) throws -> ExitStatus
}

extension Lesson {
    public func run() throws {
        let status: Int32
        do {
            status = try run(kernel: lesson.kernel).code
        } catch let error as SkiffError {
            report(error.description, root: error.cause as? SyscallError)
            status = error.exitStatus
        } catch let error as SyscallError {
            report(error.description, root: error)
            status = 125
        }
        throw ExitCode(status)
    }

    private func report(_ message: String, root: SyscallError?) {
        let name = Self.configuration.commandName ?? "lesson"
        var line = "\(name): \(message)"
        if root?.errno == EPERM && geteuid() != 0 { line += " (the lessons need root: run with sudo)" }
        printToStandardError(line)
    }

    /// Prints `lessonNN-topic: message` on standard error: the lesson's own words, apart from the
    /// command's output.
    public func say(_ message: String) {
        printToStandardError("\(Self.configuration.commandName ?? "lesson"): \(message)")
    }
}

/// The host's environment, handed to commands by the lessons that still use the host's files.
public var hostEnvironment: [String] {
    var result: [String] = []
    var entry = environ
    while let pointer = entry.pointee {
        result.append(String(cString: pointer))
        entry += 1
    }
    return result
}

/// One line on standard error, in one write(2).
public func printToStandardError(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    bytes.withUnsafeMutableBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
