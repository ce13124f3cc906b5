import CSkiff
@preconcurrency import Glibc

/// Runs a system tool and collects what it says. The design allows exactly one kind of tool:
/// the firewall's (`nft`), as Docker drives iptables; everything else Skiff does with syscalls.
public enum Tool {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public let errorOutput: String
        /// Killed because it outlived its timeout.
        public var timedOut = false
    }

    /// Finds `name` in the usual system directories (the caller's PATH may lack sbin).
    public static func find(_ name: String) -> String? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
            .map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// posix_spawn(3)s `path` with `arguments`, writes `input` to its standard input and waits.
    /// `argv0` is the name the program sees as its own (execv(3)'s argv[0]); by default the path.
    /// With `timeout` (seconds), a program still running then is killed and the result has
    /// status 128+SIGKILL and `timedOut`.
    public static func run(
        _ path: String, _ arguments: [String], input: String = "", environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        argv0: String? = nil, timeout: Int? = nil
    ) throws(SyscallError) -> Result {
        var stdinPipe: [Int32] = [-1, -1]
        var stdoutPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        try check(sk_pipe_cloexec(&stdinPipe), "pipe2")
        try check(sk_pipe_cloexec(&stdoutPipe), "pipe2")
        try check(sk_pipe_cloexec(&stderrPipe), "pipe2")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        var pid: pid_t = 0
        let spawned = withCStrings([argv0 ?? path] + arguments) { argv in
            withCStrings(environment) { envp in
                posix_spawn(&pid, path, &actions, nil, argv, envp)
            }
        }
        [stdinPipe[0], stdoutPipe[1], stderrPipe[1]].forEach { _ = close($0) }
        defer { [stdoutPipe[0], stderrPipe[0]].forEach { _ = close($0) } }
        guard spawned == 0 else {
            close(stdinPipe[1])
            throw SyscallError("posix_spawn", path: path, errno: spawned)
        }
        // The tools we run read all their input before they write much, so writing first and
        // reading after cannot deadlock; a broken pipe just means the tool stopped reading.
        // SIGPIPE ignored only meanwhile: an ignored signal would stay ignored across the
        // execve of every container started later.
        let previousHandler = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previousHandler) }
        let bytes = Array(input.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(stdinPipe[1], $0.baseAddress! + offset, bytes.count - offset) }
            if written <= 0 { break }
            offset += written
        }
        close(stdinPipe[1])
        let (output, errorOutput, timedOut) = collect(stdoutPipe[0], stderrPipe[0], until: timeout.map { monotonicSeconds() + Double($0) })
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw SyscallError("waitpid", path: path) }
        }
        return Result(
            status: ExitStatus(waitStatus: status).code, output: String(decoding: output, as: UTF8.self),
            errorOutput: String(decoding: errorOutput, as: UTF8.self), timedOut: timedOut)
    }

    /// Reads both pipes to their ends with poll(2), so a program that fills one while we wait on
    /// the other cannot deadlock; stops early at `deadline` (monotonic seconds).
    private static func collect(_ out: Int32, _ err: Int32, until deadline: Double?) -> ([UInt8], [UInt8], timedOut: Bool) {
        var collected: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: out, events: Int16(POLLIN), revents: 0), pollfd(fd: err, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            var wait: Int32 = -1
            if let deadline {
                let left = deadline - monotonicSeconds()
                if left <= 0 { return (collected[0], collected[1], true) }
                wait = Int32(min(left * 1000 + 1, 60_000))
            }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno != EINTR { break }
            for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fds[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    collected[index] += buffer[0..<count]
                } else if count == 0 || errno != EINTR {
                    fds[index].fd = -1
                }
            }
        }
        return (collected[0], collected[1], false)
    }

    private static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

extension Tool {
    /// posix_spawn(3)s `path` in a session of its own (setsid), detached from the caller's
    /// terminal and process group, with `descriptors[n]` as its descriptor n (0, 1, 2 and any
    /// more) and no other descriptor of the caller's. Returns its pid; the caller does not wait
    /// for it.
    public static func spawnDetached(_ path: String, _ arguments: [String], descriptors: [Int32], environment: [String])
        throws(SyscallError) -> pid_t
    {
        var pid: pid_t = 0
        let spawned = withCStrings([path] + arguments) { argv in
            withCStrings(environment) { envp in sk_spawn_detached(&pid, path, argv, envp, descriptors, Int32(descriptors.count)) }
        }
        guard spawned == 0 else { throw SyscallError("posix_spawn", path: path, errno: spawned) }
        return pid
    }
}
