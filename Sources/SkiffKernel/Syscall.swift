/// One kernel call, as data. Library code describes what it wants done as a `Syscall`; a `Syscalls`
/// implementation performs it (for real) or records it (in tests), and the `Narrator` prints it.
public enum Syscall: Hashable, Sendable, CustomStringConvertible {
    case unshare(NamespaceSet)
    case sethostname(String)
    case mount(source: String?, target: String, fstype: String?, flags: MountFlags, data: String?)
    case umount(String, detach: Bool)
    case pivotRoot(newRoot: String, putOld: String)
    case chdir(String)
    /// Makes a directory, or accepts one that is there; never follows a symlink at `path`.
    case mkdir(String, mode: UInt32)
    /// Makes an empty regular file (a bind-mount target), or accepts one that is there.
    case createFile(String)
    case mknod(String, mode: UInt32, major: UInt32, minor: UInt32)
    case symlink(target: String, path: String)
    /// Writes a whole file in one write(2), as /proc/PID/uid_map requires.
    case writeFile(String, contents: String)
    /// setgroups(2): the supplementary groups, none for an empty list.
    case setgroups([UInt32])
    case setresgid(UInt32)
    case setresuid(UInt32)
    /// prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent dies.
    case setParentDeathSignal(Int32)
    case chmod(String, mode: UInt32)
    case setNoNewPrivileges
    /// prctl(PR_SET_KEEPCAPS): keep the permitted capabilities across a switch to a non-root uid.
    case setKeepCapabilities(Bool)
    /// setns(2) into the namespace at `path` (a /proc/PID/ns file or a bind mount of one).
    case setns(path: String, type: NamespaceSet)
    case mkfifo(String, mode: UInt32)
    case setUmask(UInt32)
    /// A compiled seccomp filter (classic BPF), loaded for this process and all it execs.
    case loadSeccompFilter([UInt8])
    /// setrlimit(2).
    case setResourceLimit(resource: Int32, name: String, soft: UInt64, hard: UInt64)
    case rmdir(String)
    /// lsetxattr(2), e.g. overlayfs's `trusted.overlay.opaque`.
    case setxattr(String, name: String, value: String)
    /// A bind mount of `source` at `target` whose ids are shifted through the mapping of the user
    /// namespace at `userNamespace` (a /proc/PID/ns/user path): open_tree + mount_setattr + move_mount.
    case bindIdmapped(source: String, target: String, userNamespace: String)
    case kill(pid: Int32, signal: Int32)
    /// One request on a netlink socket, answered by an acknowledgement.
    case netlink(NetlinkRequest)

    /// The call as C source would show it: `mount("proc", "/r/proc", "proc", MS_NOSUID, NULL)`.
    public var description: String {
        switch self {
        case .unshare(let namespaces): "unshare(\(namespaces))"
        case .sethostname(let name): "sethostname(\(quote(name)), \(name.utf8.count))"
        case .mount(let source, let target, let fstype, let flags, let data):
            "mount(\(quote(source)), \(quote(target)), \(quote(fstype)), \(flags), \(quote(data)))"
        case .umount(let target, let detach): "umount2(\(quote(target)), \(detach ? "MNT_DETACH" : "0"))"
        case .pivotRoot(let newRoot, let putOld): "pivot_root(\(quote(newRoot)), \(quote(putOld)))"
        case .chdir(let path): "chdir(\(quote(path)))"
        case .mkdir(let path, let mode): "mkdir(\(quote(path)), \(octal(mode)))"
        case .createFile(let path): "open(\(quote(path)), O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0644)"
        case .mknod(let path, let mode, let major, let minor):
            "mknod(\(quote(path)), S_IFCHR|\(octal(mode)), makedev(\(major), \(minor)))"
        case .symlink(let target, let path): "symlink(\(quote(target)), \(quote(path)))"
        case .writeFile(let path, let contents): "write(\(quote(path)), \(quote(contents)))"
        case .setgroups(let groups): groups.isEmpty ? "setgroups(0, NULL)" : "setgroups(\(groups.count), \(groups))"
        case .setresgid(let gid): "setresgid(\(gid), \(gid), \(gid))"
        case .setresuid(let uid): "setresuid(\(uid), \(uid), \(uid))"
        case .setParentDeathSignal(let signal): "prctl(PR_SET_PDEATHSIG, \(signalName(signal)))"
        case .chmod(let path, let mode): "chmod(\(quote(path)), \(octal(mode)))"
        case .setNoNewPrivileges: "prctl(PR_SET_NO_NEW_PRIVS, 1)"
        case .setKeepCapabilities(let keep): "prctl(PR_SET_KEEPCAPS, \(keep ? 1 : 0))"
        case .setns(let path, let type): "setns(open(\(quote(path))), \(type))"
        case .mkfifo(let path, let mode): "mkfifo(\(quote(path)), \(octal(mode)))"
        case .setUmask(let mask): "umask(\(octal(mask)))"
        case .loadSeccompFilter(let program): "prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, {\(program.count / 8) BPF instructions})"
        case .setResourceLimit(_, let name, let soft, let hard):
            "setrlimit(\(name), {\(soft == UInt64.max ? "RLIM_INFINITY" : "\(soft)"), \(hard == UInt64.max ? "RLIM_INFINITY" : "\(hard)")})"
        case .rmdir(let path): "rmdir(\(quote(path)))"
        case .setxattr(let path, let name, let value): "lsetxattr(\(quote(path)), \(quote(name)), \(quote(value)))"
        case .bindIdmapped(let source, let target, let userNamespace):
            "open_tree(\(quote(source)), OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP, \(quote(userNamespace))) + move_mount(\(quote(target)))"
        case .kill(let pid, let signal): "kill(\(pid), \(signalName(signal)))"
        case .netlink(let request): "sendmsg(\(request.family), \(request.summary))"
        }
    }
}

func quote(_ text: String?) -> String {
    guard let text else { return "NULL" }
    var quoted = "\""
    for character in text {
        switch character {
        case "\"": quoted += "\\\""
        case "\\": quoted += "\\\\"
        case "\n": quoted += "\\n"
        default: quoted.append(character)
        }
    }
    return quoted + "\""
}

func octal(_ mode: UInt32) -> String { "0" + String(mode, radix: 8) }

/// `SIGKILL` for 9: names of the signals a container lab talks about.
public func signalName(_ signal: Int32) -> String {
    let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 6: "SIGABRT", 9: "SIGKILL", 10: "SIGUSR1",
        12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD", 28: "SIGWINCH",
    ]
    return names[signal] ?? "signal \(signal)"
}
