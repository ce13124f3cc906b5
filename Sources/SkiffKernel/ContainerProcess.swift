import CSkiff
@preconcurrency import Glibc

/// How a process ended, and the status a shell would report for it.
public enum ExitStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus: Int32) {
        self = sk_exited(waitStatus) != 0 ? .exited(sk_exit_status(waitStatus)) : .signaled(sk_term_signal(waitStatus))
    }

    /// The exit code, or 128+N for a process killed by signal N (as sh and docker report it).
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }
}

/// The container's first process, seen from the parent.
///
/// `clone` starts the child in new namespaces and holds it on a pipe until `start()`, because the
/// parent has work to do first that only it can do (writing the child's uid_map, moving a veth
/// into its network namespace). A second, close-on-exec pipe carries the child's setup error back:
/// end-of-file without a message means execve succeeded. Same two-pipe idea as runc and crun.
public struct ContainerProcess {
    public let pid: pid_t
    private let goWriter: Int32
    private let reportReader: Int32

    /// clone(2) with `namespaces` and runs `body` in the child once the parent calls `start()`.
    /// `body` ends in execve; whatever it throws goes to the parent and ends the child.
    /// With `dieWithParent` (the default) the child gets SIGKILL if the parent dies before it;
    /// a runtime's `create`, which exits while the container waits for `start`, turns it off.
    /// `keeping` lists descriptors of the parent's that such an init still needs.
    public static func clone(
        _ namespaces: NamespaceSet, kernel: Kernel, dieWithParent: Bool = true, keeping: [Int32] = [], why: @autoclosure () -> String,
        child body: (ChildSide) throws -> Never
    ) throws(SyscallError) -> ContainerProcess {
        let go = try Files.makePipe()
        let report = try Files.makePipe()
        // Before clone, so a signal that arrives before the child exists cannot kill us.
        sk_forward_signals_install()
        kernel.narrator.call("clone(\(namespaces == [] ? "" : "\(namespaces)|")SIGCHLD)", why: why())
        let pid = sk_clone(namespaces.rawValue)
        if pid == -1 {
            let error = SyscallError("clone \(namespaces)")
            sk_forward_signals_reset()
            [go.reader, go.writer, report.reader, report.writer].forEach { _ = close($0) }
            throw error
        }
        if pid == 0 {
            sk_forward_signals_reset()
            close(go.writer)
            close(report.reader)
            if dieWithParent {
                // Nothing of the parent's reaches the command: descriptors stay usable until execve.
                sk_cloexec_from(3)
            } else {
                // This init outlives its parent: holding the parent's pipes and sockets would make
                // whoever waits on them (the caller of `create`) wait for the container instead.
                let keep = [go.reader, report.writer, kernel.narrator.inputDescriptor] + keeping
                sk_close_descriptors_except(keep, Int32(keep.count))
            }
            let side = ChildSide(reportWriter: report.writer)
            do {
                if dieWithParent {
                    try kernel.run(.setParentDeathSignal(SIGKILL), why: "if the lesson dies, the container dies with it")
                }
                // Wait for the parent's go; end-of-file means it died before giving one.
                var byte: UInt8 = 0
                guard read(go.reader, &byte, 1) == 1 else { _exit(125) }
                close(go.reader)
                try body(side)
            } catch {
                side.fail(error)
            }
        }
        close(go.reader)
        close(report.writer)
        sk_forward_signals_to(pid)
        return ContainerProcess(pid: pid, goWriter: go.writer, reportReader: report.reader)
    }

    /// Does the parent's part of the setup (id maps, moving a link in), then lets the child go on.
    /// If the parent's part fails, the child is killed and reaped before the error is rethrown,
    /// so no half-made container is left behind.
    public func start(after parentSetup: () throws -> Void) throws {
        do {
            try parentSetup()
        } catch {
            kill(pid, SIGKILL)
            _ = try? wait()
            throw error
        }
        try start()
    }

    /// Lets the child go on with its setup.
    public func start() throws(SyscallError) {
        var byte: UInt8 = 1
        let written = write(goWriter, &byte, 1)
        close(goWriter)
        if written != 1 { throw SyscallError("write go to child", path: "\(pid)") }
    }

    /// Waits until the child says its setup is done (`ChildSide.reportReady`), for the runtime's
    /// create/start split; throws what it reported instead, after reaping it.
    public func waitUntilReady() throws(SkiffError) {
        var byte: UInt8 = 0
        var count = read(reportReader, &byte, 1)
        while count < 0 && errno == EINTR { count = read(reportReader, &byte, 1) }
        if count == 1 && byte == ChildSide.readyMarker { return }
        let report = count == 1 ? [byte] + readAll(reportReader) : []
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        throw ChildSide.decode(report)
            ?? SkiffError(.setupFailed, "the container's init ended before it was ready (\(ExitStatus(waitStatus: status)))")
    }

    /// Waits until the child has exec'd (end of file on the report pipe) and returns; throws what
    /// it reported instead, after reaping it. For a process that runs on without us (`exec -d`).
    public func waitUntilExec() throws(SkiffError) {
        let report = readAll(reportReader)
        guard let failure = ChildSide.decode(report) else { return }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        throw failure
    }

    /// Lets go of a started child without waiting: the parent is about to exit and the child
    /// lives on. (`start` closed the go pipe already.)
    public func release() {
        close(reportReader)
    }

    /// Waits for the child to exit and returns how it ended; throws what the child reported if its
    /// setup or execve failed, after it has been reaped.
    public func wait() throws(SkiffError) -> ExitStatus {
        let report = readAll(reportReader)
        close(reportReader)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else {
                throw SkiffError(.setupFailed, "waitpid \(pid)", cause: SyscallError("waitpid"))
            }
        }
        sk_forward_signals_to(0)
        if let failure = ChildSide.decode(report) { throw failure }
        return ExitStatus(waitStatus: status)
    }

}

/// The child's end of the setup channel.
public struct ChildSide {
    let reportWriter: Int32

    /// Sends `error` to the parent and ends this process with the matching exit status
    /// (125 setup failed, 126 command not executable, 127 command not found).
    public func fail(_ error: any Error) -> Never {
        let skiffError = error as? SkiffError ?? SkiffError(.setupFailed, "\(error)")
        let code = UInt8(skiffError.exitStatus)
        var bytes = [code] + Array(skiffError.message.utf8)
        if let cause = skiffError.cause { bytes += Array(": \(cause)".utf8) }
        if Self.readySent {
            var line = Array("skiff: ".utf8) + bytes.dropFirst() + [10]
            line.withUnsafeMutableBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
            signal(SIGPIPE, SIG_IGN)
        }
        bytes.withUnsafeMutableBytes { _ = write(reportWriter, $0.baseAddress, $0.count) }
        _exit(Int32(code))
    }

    /// The byte that says "set up, waiting to be started" ahead of any error report.
    static let readyMarker: UInt8 = 0

    /// Tells the parent that setup is done (the runtime's `create` then returns). Errors after
    /// this still reach a parent that waits (`run`).
    public func reportReady() {
        var byte = Self.readyMarker
        _ = write(reportWriter, &byte, 1)
        Self.readySent = true
    }

    /// Set once `reportReady` has run: the parent may be gone by now (a runtime's `create`
    /// returned), so a later failure is also told on standard error, where the caller of the
    /// container (docker logs) sees it.
    nonisolated(unsafe) static var readySent = false

    /// Closes this process's copy of the report pipe. A process that forks the command (a tiny
    /// init) calls it after fork, so the parent sees end-of-file when the command's execve succeeds.
    public func closeReport() { close(reportWriter) }

    static func decode(_ fullReport: [UInt8]) -> SkiffError? {
        let report = fullReport.first == readyMarker ? Array(fullReport.dropFirst()) : fullReport
        guard let code = report.first else { return nil }
        let message = String(decoding: report.dropFirst(), as: UTF8.self)
        switch code {
        case 126: return SkiffError(.commandNotExecutable, message)
        case 127: return SkiffError(.commandNotFound, message)
        default: return SkiffError(.setupFailed, message)
        }
    }
}

func readAll(_ fd: Int32) -> [UInt8] {
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            result += buffer[0..<count]
        } else if count == 0 || errno != EINTR {
            return result
        }
    }
}
