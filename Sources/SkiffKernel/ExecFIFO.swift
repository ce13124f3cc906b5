import CSkiff
@preconcurrency import Glibc

/// The gate between `create` and `start` (runc's exec.fifo): the container's init opens the FIFO
/// for writing, which blocks until `start` opens it for reading. The init holds an O_PATH
/// descriptor taken before pivot_root, since the host path is out of reach afterwards, and
/// reopens the FIFO through /proc/self/fd.
public struct ExecFIFO: Sendable {
    let descriptor: Int32

    /// Creates the FIFO at `path`, mode 0622: only root may open it for reading, i.e. start it.
    public static func create(at path: String, kernel: Kernel) throws(SyscallError) {
        try kernel.run(.mkfifo(path, mode: 0o622), why: "the gate that holds the container until start")
        // mkfifo applies the umask; the init may be any user by the time it opens the FIFO.
        try kernel.run(.chmod(path, mode: 0o622), why: "writable by the container's user, whoever it is")
    }

    /// Takes hold of the FIFO at `path` (in the child, before pivot_root).
    public init(holding path: String) throws(SyscallError) {
        descriptor = sk_open_path(path)
        try check(descriptor, "open O_PATH", path)
    }

    /// Blocks until `start` opens the other end, then lets go of it.
    public func waitForStart() throws(SyscallError) {
        let writer = open("/proc/self/fd/\(descriptor)", O_WRONLY | O_CLOEXEC)
        try check(writer, "open", "exec.fifo")
        var byte: UInt8 = 0
        _ = write(writer, &byte, 1)
        close(writer)
        close(descriptor)
    }

    /// `start`: opens the FIFO for reading, which releases the waiting init, and reads its byte.
    /// Non-blocking open, so a container that is not waiting (dead) is an error, not a hang;
    /// then poll(2) for the byte, bounded.
    public static func start(at path: String) throws(SyscallError) {
        let reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        try check(reader, "open", path)
        defer { close(reader) }
        var byte: UInt8 = 0
        var descriptor = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
        for _ in 0..<50 {
            if read(reader, &byte, 1) == 1 { return }
            // Until the init's open(O_WRONLY) completes there is no writer and read sees end of
            // file; poll wakes us when its byte arrives.
            _ = poll(&descriptor, 1, 100)
        }
        throw SyscallError("read", path: path, errno: ETIMEDOUT)
    }
}
