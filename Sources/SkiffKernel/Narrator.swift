@preconcurrency import Glibc

/// Tells an audience what the kernel is asked to do and why: `--explain` prints each call with its
/// real arguments and one line of why; `--step` also waits for Enter before each call.
/// Silent by default, and then it costs one branch: the call text is built only when printed.
public struct Narrator: Sendable {
    public enum Mode: Sendable { case silent, explain, step }

    public let mode: Mode
    /// Where `--step` reads Enter from: the terminal when there is one, else standard input.
    /// Opened once, before the container exists, so it still works after pivot_root.
    private let input: Int32

    public static let silent = Narrator(mode: .silent)

    public init(mode: Mode) {
        self.mode = mode
        if mode == .step {
            let tty = open("/dev/tty", O_RDONLY | O_CLOEXEC)
            input = tty >= 0 ? tty : STDIN_FILENO
        } else {
            input = -1
        }
    }

    public var isOn: Bool { mode != .silent }

    /// The descriptor `--step` reads from, or -1.
    var inputDescriptor: Int32 { input }

    /// Narrates one kernel call: `unshare(CLONE_NEWUTS)  give this process its own hostname`.
    public func call(_ text: @autoclosure () -> String, why: @autoclosure () -> String) {
        guard isOn else { return }
        let line = text()
        let padding = String(repeating: " ", count: max(2, 56 - line.count))
        emit(line + padding + why() + "\n")
        if mode == .step { waitForEnter() }
    }

    /// Narrates a fact that is not a call: which cgroup driver was picked, what the child reported.
    public func note(_ text: @autoclosure () -> String) {
        guard isOn else { return }
        emit("# " + text() + "\n")
    }

    /// One write(2) per line, straight to standard error: the parent and the child both narrate,
    /// and buffered output would interleave or be printed twice after fork.
    private func emit(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    private func waitForEnter() {
        emit("  [press Enter to run it]\n")
        var byte: UInt8 = 0
        while read(input, &byte, 1) == 1, byte != UInt8(ascii: "\n") {}
    }
}

/// What library code talks to: the syscall seam plus the narrator. Every step goes through `run`,
/// so whatever is done is also what `--explain` shows and what tests record.
public struct Kernel {
    public let syscalls: any Syscalls
    public let narrator: Narrator

    public init(syscalls: any Syscalls = LinuxSyscalls(), narrator: Narrator = .silent) {
        self.syscalls = syscalls
        self.narrator = narrator
    }

    public func run(_ call: Syscall, why: @autoclosure () -> String) throws(SyscallError) {
        narrator.call(call.description, why: why())
        try syscalls.perform(call)
    }
}

/// A user namespace that something else made and will end: idmapped mounts take their mapping
/// from one (see SkiffNamespaces' MappingHolder).
public protocol LentUserNamespace {
    /// A /proc/PID/ns/user path.
    var userNamespacePath: String { get }
    func release(kernel: Kernel)
}
