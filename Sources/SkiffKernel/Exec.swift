import CSkiff
@preconcurrency import Glibc

extension Kernel {
    /// execve(2) of `command`, found on the PATH of `environment` when it has no slash, as
    /// execvp(3) would. Never returns on success; throws `commandNotFound` (exit 127) or
    /// `commandNotExecutable` (exit 126) so the user sees what went wrong, as `docker run` does.
    public func exec(_ command: [String], environment: [String], why: @autoclosure () -> String) throws(SkiffError) -> Never {
        guard let name = command.first, !name.isEmpty else {
            throw SkiffError(.invalidInput, "no command given: put it after --, for example -- /bin/sh")
        }
        let path = try resolve(name, environment: environment)
        narrator.call("execve(\(quote(path)), [\(command.map { quote($0) }.joined(separator: ", "))], envp)", why: why())
        let error = withCStrings(command) { argv in
            withCStrings(environment) { envp in
                execve(path, argv, envp)
                return errno
            }
        }
        switch error {
        case ENOENT: throw SkiffError(.commandNotFound, "exec \(path): no such file (is it a script whose interpreter is missing?)")
        case EACCES: throw SkiffError(.commandNotExecutable, "exec \(path): permission denied (is it executable?)")
        case ENOEXEC: throw SkiffError(.commandNotExecutable, "exec \(path): not an executable format")
        default: throw SkiffError(.commandNotExecutable, "exec \(path)", cause: SyscallError("execve", path: path, errno: error))
        }
    }

    private func resolve(_ name: String, environment: [String]) throws(SkiffError) -> String {
        if name.contains("/") { return name }
        let searchPath =
            environment.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) }
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        var foundNotExecutable: String?
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
            if foundNotExecutable == nil, access(candidate, F_OK) == 0 { foundNotExecutable = candidate }
        }
        if let foundNotExecutable {
            throw SkiffError(.commandNotExecutable, "exec \(foundNotExecutable): permission denied (is it executable?)")
        }
        throw SkiffError(.commandNotFound, "exec \(name): command not found in PATH \(searchPath)")
    }
}

/// Runs `body` with a NULL-terminated C array of `strings`.
func withCStrings<Result>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> Result) -> Result {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}

extension Kernel {
    /// Becomes `uid`/`gid` with `groups`: groups first, then the gid, then the uid, because each
    /// step needs the privilege the next one gives up. A change of credentials clears the
    /// parent-death signal (prctl(2)), so one that was set is set again.
    public func switchUser(uid: UInt32, gid: UInt32, groups: [UInt32], why: String) throws(SyscallError) {
        try switchUser(
            uid: uid, gid: gid, groups: groups,
            why: (
                groups.isEmpty ? "no supplementary groups" : "the user's supplementary groups", "group \(gid): \(why)",
                "user \(uid): \(why)"
            ))
    }

    /// The same, with a reason for each step.
    public func switchUser(uid: UInt32, gid: UInt32, groups: [UInt32], why: (groups: String, gid: String, uid: String)) throws(SyscallError)
    {
        let parentDeathSignal = sk_parent_death_signal()
        try run(.setgroups(groups), why: why.groups)
        try run(.setresgid(gid), why: why.gid)
        try run(.setresuid(uid), why: why.uid)
        if parentDeathSignal != 0 {
            try run(.setParentDeathSignal(parentDeathSignal), why: "credentials changed, which cleared the parent-death signal")
        }
    }
}
