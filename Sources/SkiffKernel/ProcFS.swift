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

    /// The mount table of `pid`, as text: what cgroup detection reads.
    public func mountInfo(of pid: String = "self") throws(SyscallError) -> String {
        try Files.readText("\(root)/\(pid)/mountinfo")
    }
}

/// Reading files is not a change to the system, so it does not go through the `Syscalls` seam;
/// callers that need a fake take a root directory instead.
public enum Files {
    public static func readText(_ path: String) throws(SyscallError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try check(fd, "open", path)
        defer { close(fd) }
        return String(decoding: readAll(fd), as: UTF8.self)
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
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
