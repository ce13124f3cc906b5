import CSkiff
@preconcurrency import Glibc

/// Runs a system tool and collects what it says. The design allows exactly one kind of tool:
/// the firewall's (`nft`), as Docker drives iptables; everything else Skiff does with syscalls.
public enum Tool {
    public struct Result: Sendable {
        public let status: Int32
        public let output: String
        public let errorOutput: String
    }

    /// Finds `name` in the usual system directories (the caller's PATH may lack sbin).
    public static func find(_ name: String) -> String? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
            .map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// posix_spawn(3)s `path` with `arguments`, writes `input` to its standard input and waits.
    /// `argv0` is the name the program sees as its own (execv(3)'s argv[0]); by default the path.
    public static func run(
        _ path: String, _ arguments: [String], input: String = "", environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        argv0: String? = nil
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
        let output = String(decoding: readAll(stdoutPipe[0]), as: UTF8.self)
        let errorOutput = String(decoding: readAll(stderrPipe[0]), as: UTF8.self)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw SyscallError("waitpid", path: path) }
        }
        return Result(status: ExitStatus(waitStatus: status).code, output: output, errorOutput: errorOutput)
    }
}
