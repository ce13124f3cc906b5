import CSkiff
@preconcurrency import Glibc

/// The container's terminal, for `process.terminal` (runc's console socket protocol): the caller
/// listens on a unix socket and passes its path; the runtime connects to it before the container
/// starts; the container's init makes a pty in its own devpts, sends the master over the socket
/// (SCM_RIGHTS) and makes the slave its controlling terminal and stdio.
public enum Terminal {
    /// Connects to the caller's console socket (in the parent, where its path can be named).
    public static func connect(to path: String) throws(SyscallError) -> Int32 {
        let socket = sk_connect_unix(path)
        try check(socket, "connect", path)
        return socket
    }

    /// In the container's init, after pivot_root: the pty, the master sent over `socket`, the
    /// slave as controlling terminal and stdio.
    public static func setUp(sendingMasterOver socket: Int32, kernel: Kernel) throws(SyscallError) {
        var name = [CChar](repeating: 0, count: 128)
        let master = sk_open_pty(&name, name.count)
        try check(master, "open", "/dev/ptmx")
        let slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        kernel.narrator.call(
            "open(\"/dev/ptmx\") + sendmsg(SCM_RIGHTS)", why: "a terminal of the container's own; its master goes to the caller")
        defer { close(master) }
        try check(sk_send_descriptor(socket, master), "send the pty master over", "the console socket")
        close(socket)
        let slave = open(slavePath, O_RDWR)
        try check(slave, "open", slavePath)
        kernel.narrator.call("setsid() + ioctl(TIOCSCTTY) + dup2(\(slavePath) -> 0, 1, 2)", why: "the terminal becomes the process's own")
        try check(sk_become_terminal(slave), "make the controlling terminal", slavePath)
    }
}
