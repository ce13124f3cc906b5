import CSkiff
@preconcurrency import Glibc

/// Readers for /proc. The root is a parameter so tests can point them at a directory they made.
public struct ProcFS: Sendable {
    public let root: String

    public init(root: String = "/proc") { self.root = root }

    /// The inode of each namespace of `pid` (`uts` -> 4026531838): two processes share a namespace
    /// exactly when these numbers (and the nsfs device) are equal. See namespaces(7).
    public func namespaceInodes(of pid: String = "self") -> [String: UInt64] {
        var inodes: [String: UInt64] = [:]
        for name in NamespaceSet.names.map(\.proc) {
            var info = stat()
            if stat("\(root)/\(pid)/ns/\(name)", &info) == 0 { inodes[name] = UInt64(info.st_ino) }
        }
        return inodes
    }

    /// Mount points of `pid`'s mount namespace, from mountinfo (proc(5)), in mount order.
    public func mountPoints(of pid: String = "self") throws(SyscallError) -> [String] {
        try Files.readText("\(root)/\(pid)/mountinfo").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 ? unescapeMountField(fields[4]) : nil
        }
    }

    /// Whether process `pid` is still running: it exists and is not a zombie (a zombie has
    /// exited and only waits for its parent to collect its status).
    public func isRunning(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? Files.readText("\(root)/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return true }
        // Field 3, after the command name in parentheses (which may itself hold spaces).
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// The mount table of `pid`, as text: what cgroup detection reads.
    public func mountInfo(of pid: String = "self") throws(SyscallError) -> String {
        try Files.readText("\(root)/\(pid)/mountinfo")
    }
}

/// Reading files is not a change to the system, so it does not go through the `Syscalls` seam;
/// callers that need a fake take a root directory instead.
public enum Files {
    /// Lowercase hexadecimal, two digits a byte: how digests and ids are written.
    public static func hexadecimal(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    public static func readText(_ path: String) throws(SyscallError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try check(fd, "open", path)
        defer { close(fd) }
        return String(decoding: readAll(fd), as: UTF8.self)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Replaces the file at `path` with `bytes` so that a reader, or a crash, sees the old file or
    /// the new one, never half of one: a temporary file beside it, fsync(2), rename(2).
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(SyscallError) {
        let temporary = "\(path).new-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        try check(fd, "open", temporary)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else {
            let error = written < 0 || synced != 0 ? errno : EIO
            unlink(temporary)
            throw SyscallError("write", path: temporary, errno: error)
        }
        guard rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw SyscallError("rename", path: path, errno: error)
        }
    }

    /// Whether `path` is a directory (following symlinks), or nil if there is nothing there.
    public static func isDirectory(_ path: String) -> Bool? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & S_IFMT == S_IFDIR
    }

    /// Makes every missing directory of `path` (mkdir -p). Existing components may be symlinks:
    /// these are host paths the user chose. Inside a layer, use a walk that refuses symlinks.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SyscallError) {
        var current = path.hasPrefix("/") ? "" : currentDirectory()
        for component in path.split(separator: "/") {
            current += "/\(component)"
            var info = stat()
            if stat(current, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else { throw SyscallError("mkdir", path: current, errno: ENOTDIR) }
            } else if mkdir(current, mode) != 0 && errno != EEXIST {
                throw SyscallError("mkdir", path: current)
            }
        }
    }

    /// getcwd(3).
    public static func currentDirectory() -> String {
        guard let directory = getcwd(nil, 0) else { return "/" }
        defer { free(directory) }
        return String(cString: directory)
    }

    /// `path` made absolute against the current directory (without resolving symlinks).
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let relative = path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
        return relative.isEmpty ? currentDirectory() : currentDirectory() + "/" + relative
    }

    /// Names in a directory, without . and .., sorted bytewise so walks are reproducible.
    public static func names(in directory: String) throws(SyscallError) -> [String] {
        guard let handle = opendir(directory) else { throw SyscallError("opendir", path: directory) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// An anonymous in-memory file (memfd_create(2)), closed on exec.
    public static func anonymous(_ name: String) throws(SyscallError) -> Int32 {
        let fd = sk_memfd_create(name)
        try check(fd, "memfd_create", name)
        return fd
    }

    /// Reads `fd` to its end in 64 KiB pieces, handing each to `body`; EINTR is retried and a
    /// failed read is a SyscallError naming `path`.
    public static func forEachChunk(of fd: Int32, path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return }
            if count < 0 {
                if errno == EINTR { continue }
                throw SyscallError("read", path: path)
            }
            try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
    }

    /// A held flock(2) on a lock file; `release` unlocks before closing, so that a process
    /// forked meanwhile (which shares the open file) does not keep the lock.
    public struct FileLock {
        let fd: Int32

        public func release() {
            flock(fd, LOCK_UN)
            close(fd)
        }
    }

    /// Opens (creating, mode 0600) the lock file at `path` and takes flock(2) `operation` on it
    /// (LOCK_EX or LOCK_SH), waiting for other holders; EINTR is retried.
    public static func lock(_ path: String, _ operation: Int32 = LOCK_EX) throws(SyscallError) -> FileLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try check(fd, "open", path)
        while flock(fd, operation) != 0 {
            guard errno == EINTR else {
                let error = SyscallError("flock", path: path)
                close(fd)
                throw error
            }
        }
        return FileLock(fd: fd)
    }

    /// pipe2(2) with O_CLOEXEC: neither end reaches a program this process starts unless it is
    /// handed over on purpose.
    public static func makePipe() throws(SyscallError) -> (reader: Int32, writer: Int32) {
        var fds: [Int32] = [-1, -1]
        try check(sk_pipe_cloexec(&fds), "pipe2")
        return (fds[0], fds[1])
    }

    /// Everything in the file open at `fd`, from its start.
    public static func contents(of fd: Int32) -> [UInt8] {
        lseek(fd, 0, SEEK_SET)
        return readAll(fd)
    }

    /// makedev(3): the dev_t for a major and minor device number.
    public static func deviceNumber(major: UInt32, minor: UInt32) -> dev_t { sk_makedev(major, minor) }

    /// major(3) and minor(3) of a dev_t.
    public static func majorMinor(_ device: dev_t) -> (major: UInt32, minor: UInt32) { (sk_major(device), sk_minor(device)) }

    /// The names of the extended attributes on `path` itself.
    public static func xattrNames(_ path: String) -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let size = buffer.withUnsafeMutableBytes { sk_llistxattr(path, $0.baseAddress, $0.count) }
        guard size > 0 else { return [] }
        return buffer.prefix(size).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value of extended attribute `name` on `path` itself (never a symlink's target), or nil.
    public static func xattr(_ path: String, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let size = buffer.withUnsafeMutableBytes { sk_lgetxattr(path, name, $0.baseAddress, $0.count) }
        return size < 0 ? nil : String(decoding: buffer.prefix(size), as: UTF8.self)
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
public func unescapeMountField(_ field: Substring) -> String {
    var bytes: [UInt8] = []
    var input = Array(field.utf8)[...]
    while let byte = input.popFirst() {
        if byte == UInt8(ascii: "\\"), input.count >= 3, let value = UInt8(String(decoding: input.prefix(3), as: UTF8.self), radix: 8) {
            bytes.append(value)
            input = input.dropFirst(3)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
