import CSkiff
@preconcurrency import Glibc
import SkiffKernel

/// The PID namespace (pid_namespaces(7)): the first process is PID 1 there, and it takes on PID 1's
/// two duties. It adopts orphans and must reap them, or they stay zombies; and the kernel delivers
/// it only the signals it has a handler for, so a plain `sleep` as PID 1 ignores SIGTERM.
public enum PIDNamespace {
    /// Replaces this process (PID 1) with `command`. Cheap, but the command gets PID 1's duties.
    public static func execAsPID1(_ command: [String], environment: [String], kernel: Kernel) throws(SkiffError) -> Never {
        try kernel.exec(command, environment: environment, why: "become the command: it is PID 1 now, with PID 1's duties")
    }

    /// Runs `command` as PID 1, or under a tiny init when `withInit` is set: lesson 02 in one call.
    public static func run(
        _ command: [String], environment: [String], withInit: Bool, side: ChildSide, kernel: Kernel
    ) throws(SkiffError) -> Never {
        if withInit { runInit(command, environment: environment, side: side, kernel: kernel) }
        try execAsPID1(command, environment: environment, kernel: kernel)
    }

    /// A tiny init as PID 1 (like `docker run --init`): forks `command` as PID 2, forwards it the
    /// signals it gets, reaps every child it is given, and exits with the command's status.
    public static func runInit(_ command: [String], environment: [String], side: ChildSide, kernel: Kernel) -> Never {
        // Handlers before fork: PID 1 ignores signals without a handler, and none must be lost.
        sk_forward_signals_install()
        kernel.narrator.call("fork()", why: "PID 1 stays an init; the command runs as PID 2")
        let commandPID = fork()
        if commandPID == 0 {
            sk_forward_signals_reset()
            do { try kernel.exec(command, environment: environment, why: "run the command as PID 2") } catch { side.fail(error) }
        }
        if commandPID == -1 { side.fail(SyscallError("fork")) }
        sk_forward_signals_to(commandPID)
        // The command's copy of the report pipe closes at its execve; ours must close now, or the
        // parent would wait for an end-of-file that never comes.
        side.closeReport()
        var status: Int32 = 0
        while true {
            let reaped = Glibc.wait(&status)
            if reaped == commandPID { break }
            if reaped == -1 && errno != EINTR { _exit(125) }
        }
        // When PID 1 exits the kernel kills everything else in the namespace (SIGKILL).
        let exit = sk_exited(status) != 0 ? sk_exit_status(status) : 128 + sk_term_signal(status)
        _exit(exit)
    }
}
