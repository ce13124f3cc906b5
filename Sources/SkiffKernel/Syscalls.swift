import CSkiff
@preconcurrency import Glibc

/// The seam between Skiff and the kernel: every state-changing call goes through `perform`, so
/// tests can swap in `RecordingSyscalls` and assert the exact sequence without root.
public protocol Syscalls {
    func perform(_ call: Syscall) throws(SyscallError)
}

/// The real kernel.
public struct LinuxSyscalls: Syscalls, Sendable {
    public init() {}

    public func perform(_ call: Syscall) throws(SyscallError) {
        switch call {
        case .unshare(let namespaces):
            try check(sk_unshare(namespaces.rawValue), "unshare \(namespaces)")
        case .sethostname(let name):
            try check(sethostname(name, name.utf8.count), "sethostname", name)
        case .mount(let source, let target, let fstype, let flags, let data):
            try check(
                mount(source ?? "", target, fstype, UInt(flags.rawValue), data),
                "mount \(fstype ?? source ?? "") (\(flags)) on", target)
        case .umount(let target, let detach):
            try check(umount2(target, detach ? Int32(MNT_DETACH) : 0), "umount2", target)
        case .pivotRoot(let newRoot, let putOld):
            try check(sk_pivot_root(newRoot, putOld), "pivot_root", newRoot)
        case .chdir(let path):
            try check(Glibc.chdir(path), "chdir", path)
        case .mkdir(let path, let mode):
            try ensureDirectory(path, mode: mode)
        case .createFile(let path):
            let fd = open(path, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o644)
            try check(fd, "create", path)
            close(fd)
        case .mknod(let path, let mode, let major, let minor):
            try check(mknod(path, S_IFCHR | mode, sk_makedev(major, minor)), "mknod", path)
        case .symlink(let target, let path):
            try check(Glibc.symlink(target, path), "symlink", path)
        case .writeFile(let path, let contents):
            try writeWhole(path, contents)
        case .setgroups(let groups):
            try check(groups.isEmpty ? setgroups(0, nil) : setgroups(groups.count, groups), "setgroups")
        case .setresgid(let gid):
            try check(sk_setresgid(gid), "setresgid \(gid)")
        case .setresuid(let uid):
            try check(sk_setresuid(uid), "setresuid \(uid)")
        case .setParentDeathSignal(let signal):
            try check(sk_set_parent_death_signal(signal), "prctl PR_SET_PDEATHSIG")
        case .chmod(let path, let mode):
            try check(Glibc.chmod(path, mode), "chmod", path)
        case .setKeepCapabilities(let keep):
            try check(sk_set_keep_capabilities(keep ? 1 : 0), "prctl PR_SET_KEEPCAPS")
        case .setns(let path, let type):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            try check(fd, "open", path)
            defer { close(fd) }
            try check(sk_setns(fd, Int32(type.rawValue)), "setns \(type)", path)
        case .setUmask(let mask):
            _ = umask(mode_t(mask))
        case .mkfifo(let path, let mode):
            try check(Glibc.mkfifo(path, mode), "mkfifo", path)
        case .setNoNewPrivileges:
            try check(sk_set_no_new_privileges(), "prctl PR_SET_NO_NEW_PRIVS")
        case .loadSeccompFilter(let program):
            try check(program.withUnsafeBytes { sk_load_seccomp_filter($0.baseAddress, $0.count) }, "prctl PR_SET_SECCOMP")
        case .setResourceLimit(let resource, let name, let soft, let hard):
            var limit = rlimit(rlim_cur: rlim_t(soft), rlim_max: rlim_t(hard))
            try check(setrlimit(__rlimit_resource_t(UInt32(resource)), &limit), "setrlimit \(name)")
        case .rmdir(let path):
            try check(Glibc.rmdir(path), "rmdir", path)
        case .setxattr(let path, let name, let value):
            try check(sk_lsetxattr(path, name, value, value.utf8.count), "lsetxattr \(name)", path)
        case .bindIdmapped(let source, let target, let userNamespace):
            var failedStep: UnsafePointer<CChar>?
            if sk_bind_idmapped(source, target, userNamespace, &failedStep) != 0 {
                throw SyscallError("\(failedStep.map { String(cString: $0) } ?? "idmapped mount") \(source) ->", path: target)
            }
        case .kill(let pid, let signal):
            try check(Glibc.kill(pid, signal), "kill \(signalName(signal))", "\(pid)")
        case .netlink(let request):
            try request.send()
        }
    }

    /// mkdir that accepts an existing directory but refuses anything else there, a symlink above
    /// all: a rootfs that links /proc to /etc must not make us mount over the host's /etc
    /// (the class of bug behind runc's CVE-2019-19921).
    private func ensureDirectory(_ path: String, mode: UInt32) throws(SyscallError) {
        if Glibc.mkdir(path, mode) == 0 { return }
        let error = errno
        guard error == EEXIST else { throw SyscallError("mkdir", path: path, errno: error) }
        var info = stat()
        try check(lstat(path, &info), "lstat", path)
        guard info.st_mode & S_IFMT == S_IFDIR else { throw SyscallError("mkdir", path: path, errno: ENOTDIR) }
    }

    private func writeWhole(_ path: String, _ contents: String) throws(SyscallError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        try check(fd, "open", path)
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 { throw SyscallError("write", path: path) }
        if written != bytes.count { throw SyscallError("write", path: path, errno: EIO) }
    }
}

/// Throws the current errno as a `SyscallError` when a C call returned -1.
@inline(__always)
func check(_ result: Int32, _ operation: String, _ path: String? = nil) throws(SyscallError) {
    if result == -1 { throw SyscallError(operation, path: path) }
}

/// Records each call instead of making it. `failures` makes a chosen call fail with an errno,
/// so error paths can be tested too.
public final class RecordingSyscalls: Syscalls {
    public private(set) var calls: [Syscall] = []
    public var failures: [Syscall: Int32] = [:]

    public init() {}

    public func perform(_ call: Syscall) throws(SyscallError) {
        calls.append(call)
        if let errno = failures[call] { throw SyscallError("\(call)", errno: errno) }
    }
}
