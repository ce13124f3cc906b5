import CSeccomp
import Foundation
import SkiffJSON
import SkiffKernel

/// A seccomp profile in the format Docker and the OCI runtime spec use
/// (`linux.seccomp`): a default action, architectures, and rules naming syscalls.
public struct SeccompProfile: Codable, Equatable, Sendable {
    public struct Argument: Codable, Equatable, Sendable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64?
        public var op: String
    }

    /// Docker's conditions on a rule (its profile format, not the OCI one): `includes` must all
    /// hold, `excludes` must not.
    public struct Condition: Codable, Equatable, Sendable {
        public var caps: [String]?
        public var arches: [String]?
        public var minKernel: String?
    }

    public struct Rule: Codable, Equatable, Sendable {
        public var names: [String]
        public var action: String
        public var args: [Argument]?
        public var errnoRet: UInt32?
        public var includes: Condition?
        public var excludes: Condition?

        public init(names: [String], action: String, args: [Argument]? = nil, errnoRet: UInt32? = nil) {
            self.names = names
            self.action = action
            self.args = args
            self.errnoRet = errnoRet
        }
    }

    /// Docker's `archMap`: an architecture and the sub-architectures that come with it.
    public struct ArchitectureGroup: Codable, Equatable, Sendable {
        public var architecture: String
        public var subArchitectures: [String]?
    }

    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]?
    public var archMap: [ArchitectureGroup]?
    public var syscalls: [Rule]?

    public init(defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil, syscalls: [Rule]? = nil) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }

    /// Reads a profile file; a malformed one is an error that names the field.
    public static func load(_ path: String) throws(SkiffError) -> SeccompProfile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw SkiffError(.invalidInput, "cannot read the seccomp profile \(path): \(error.localizedDescription)")
        }
        let profile = try JSONInput.decode(
            SeccompProfile.self, from: data, label: "seccomp profile \(path)", invalid: "seccomp profile \(path) is not valid JSON")
        try profile.validate(source: path)
        return profile
    }

    /// Checks what JSON decoding cannot: the action, operator and architecture names.
    public func validate(source: String) throws(SkiffError) {
        func fail(_ field: String, _ value: String) -> SkiffError {
            SkiffError(.invalidInput, "seccomp profile \(source): \(field) \"\(value)\" is not valid")
        }
        guard Self.action(defaultAction, errno: defaultErrnoRet) != nil else { throw fail("defaultAction", defaultAction) }
        for (index, architecture) in (architectures ?? []).enumerated() where Self.architecture(architecture) == nil {
            throw fail("architectures[\(index)]", architecture)
        }
        for (index, rule) in (syscalls ?? []).enumerated() {
            guard Self.action(rule.action, errno: rule.errnoRet) != nil else { throw fail("syscalls[\(index)].action", rule.action) }
            for (argument, comparison) in (rule.args ?? []).enumerated() {
                guard Self.comparison(comparison.op) != nil else { throw fail("syscalls[\(index)].args[\(argument)].op", comparison.op) }
                guard comparison.index < 6 else { throw fail("syscalls[\(index)].args[\(argument)].index", "\(comparison.index)") }
            }
        }
    }

    /// The profile every container gets unless told otherwise: allow what a program needs,
    /// EPERM for the rest, the same in effect as Docker's default. The allow-list is every
    /// syscall libseccomp knows on this architecture minus `blocked`, so a syscall newer than
    /// libseccomp is refused too. `clone` is allowed only without namespace flags, and `clone3`,
    /// whose flags sit in memory a filter cannot read, answers ENOSYS so the C library falls back
    /// to clone.
    public static var containerDefault: SeccompProfile {
        var allowed: [String] = []
        for number in 0..<1024 {
            guard let name = seccomp_syscall_resolve_num_arch(0, Int32(number)) else { continue }
            defer { free(name) }
            let text = String(cString: name)
            if !blocked.contains(text) && text != "clone" && text != "clone3" { allowed.append(text) }
        }
        let namespaceFlags: UInt64 = 0x7E02_0000  // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
        return SeccompProfile(
            defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: UInt32(EPERM),
            architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            syscalls: [
                Rule(names: allowed, action: "SCMP_ACT_ALLOW"),
                Rule(
                    names: ["clone"], action: "SCMP_ACT_ALLOW",
                    args: [Argument(index: 0, value: namespaceFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")]),
                Rule(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: UInt32(ENOSYS)),
            ])
    }

    /// What a container must not call, with Docker's reasons: they reach past the container's
    /// namespaces into the host (modules, clock, swap, reboot, keyrings, kernel memory), defeat
    /// isolation (new namespaces, mounts, ptrace of other processes, BPF, perf), or are obsolete
    /// and risky (uselib, ustat, vm86).
    public static let blocked: Set<String> = [
        "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy", "init_module", "io_uring_enter",
        "io_uring_register", "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
        "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
        "open_by_handle_at", "open_tree", "perf_event_open", "pidfd_getfd", "pivot_root", "process_madvise",
        "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot",
        "request_key", "set_mempolicy", "set_mempolicy_home_node", "setns", "settimeofday", "stime", "swapoff", "swapon",
        "syslog", "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
    ]

    static func action(_ name: String, errno: UInt32?) -> UInt32? {
        switch name {
        case "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW
        case "SCMP_ACT_ERRNO": sk_scmp_act_errno(UInt16(errno ?? UInt32(EPERM)))
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP": SCMP_ACT_TRAP
        case "SCMP_ACT_LOG": SCMP_ACT_LOG
        case "SCMP_ACT_TRACE": sk_scmp_act_trace(UInt16(errno ?? 0))
        default: nil
        }
    }

    static func comparison(_ name: String) -> scmp_compare? {
        switch name {
        case "SCMP_CMP_NE": SCMP_CMP_NE
        case "SCMP_CMP_LT": SCMP_CMP_LT
        case "SCMP_CMP_LE": SCMP_CMP_LE
        case "SCMP_CMP_EQ": SCMP_CMP_EQ
        case "SCMP_CMP_GE": SCMP_CMP_GE
        case "SCMP_CMP_GT": SCMP_CMP_GT
        case "SCMP_CMP_MASKED_EQ": SCMP_CMP_MASKED_EQ
        default: nil
        }
    }

    /// `SCMP_ARCH_X86_64` -> libseccomp's token for x86_64.
    static func architecture(_ name: String) -> UInt32? {
        let bare = name.hasPrefix("SCMP_ARCH_") ? String(name.dropFirst("SCMP_ARCH_".count)).lowercased() : name.lowercased()
        let token = seccomp_arch_resolve_name(bare)
        return token == 0 ? nil : token
    }

    /// Compiles the profile to classic BPF with libseccomp, in the parent: the child only has to
    /// load the bytes, the last thing before execve (crun does the same). Syscalls libseccomp does
    /// not know are skipped, as Docker skips them.
    /// Whether `condition` holds for a container with `capabilities` on this machine: every
    /// capability it names is kept, this architecture is among its arches, the kernel is at
    /// least minKernel. (Docker's semantics for includes and excludes.)
    static func holds(_ condition: Condition, capabilities: CapabilitySet) -> Bool {
        if let caps = condition.caps,
            !caps.allSatisfy({ name in (try? CapabilitySet(names: [name])).map { capabilities.bits & $0.bits == $0.bits } ?? false })
        {
            return false
        }
        if let arches = condition.arches, !arches.contains(where: { architecture($0) == seccomp_arch_native() }) { return false }
        if let minKernel = condition.minKernel, kernelVersion().lexicographicallyPrecedes(versionNumbers(minKernel)) { return false }
        return true
    }

    static func versionNumbers(_ text: String) -> [Int] {
        text.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    }

    static func kernelVersion() -> [Int] {
        var names = utsname()
        uname(&names)
        let release = withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return versionNumbers(release)
    }

    /// The rules that apply to a container with `capabilities`: Docker's includes and excludes
    /// decided now, as Docker decides them before handing the profile to runc.
    public func resolved(for capabilities: CapabilitySet) -> SeccompProfile {
        var profile = self
        profile.syscalls = syscalls?.filter { rule in
            rule.includes.map { Self.holds($0, capabilities: capabilities) } ?? true
                && !(rule.excludes.map { condition in
                    // An empty excludes excludes nothing.
                    (condition.caps ?? []).isEmpty && (condition.arches ?? []).isEmpty && condition.minKernel == nil
                        ? false : Self.holds(condition, capabilities: capabilities)
                } ?? false)
        }
        for group in archMap ?? [] where Self.architecture(group.architecture) == seccomp_arch_native() {
            profile.architectures = (profile.architectures ?? []) + [group.architecture] + (group.subArchitectures ?? [])
        }
        profile.archMap = nil
        return profile
    }

    public func compile() throws(SkiffError) -> [UInt8] {
        guard let defaultAction = Self.action(defaultAction, errno: defaultErrnoRet), let context = seccomp_init(defaultAction) else {
            throw SkiffError(.setupFailed, "libseccomp: cannot start a filter")
        }
        defer { seccomp_release(context) }
        for name in architectures ?? [] {
            guard let token = Self.architecture(name) else { continue }
            let added = seccomp_arch_add(context, token)
            // -EEXIST: the native architecture is there already; -EINVAL: not for this machine.
            guard added == 0 || added == -EEXIST || added == -EINVAL else {
                throw SkiffError(
                    .setupFailed, "libseccomp: cannot add the architecture \(name)", cause: SyscallError("seccomp_arch_add", errno: -added))
            }
        }
        for rule in syscalls ?? [] {
            guard let action = Self.action(rule.action, errno: rule.errnoRet), action != defaultAction || !(rule.args ?? []).isEmpty else {
                continue
            }
            var comparisons = (rule.args ?? []).compactMap { argument in
                Self.comparison(argument.op).map {
                    scmp_arg_cmp(arg: argument.index, op: $0, datum_a: argument.value, datum_b: argument.valueTwo ?? 0)
                }
            }
            for name in rule.names {
                let number = seccomp_syscall_resolve_name(name)
                guard number != __NR_SCMP_ERROR else { continue }
                let added = seccomp_rule_add_array(context, action, number, UInt32(comparisons.count), &comparisons)
                guard added == 0 || added == -EEXIST else {
                    throw SkiffError(
                        .setupFailed, "libseccomp: cannot add the rule for \(name)", cause: SyscallError("seccomp_rule_add", errno: -added))
                }
            }
        }
        do {
            let file = try Files.anonymous("seccomp-filter")
            defer { close(file) }
            let exported = seccomp_export_bpf(context, file)
            guard exported == 0 else { throw SyscallError("seccomp_export_bpf", errno: -exported) }
            return Files.contents(of: file)
        } catch {
            throw SkiffError(.setupFailed, "libseccomp: cannot compile the filter", cause: error)
        }
    }
}

/// Loads a compiled filter into the calling process. Without no_new_privs, the kernel demands
/// CAP_SYS_ADMIN for it, so callers load it before they drop capabilities.
public enum Seccomp {
    public static func load(_ program: [UInt8], kernel: Kernel) throws(SyscallError) {
        try kernel.run(.loadSeccompFilter(program), why: "last: from here on the kernel checks every syscall against the filter")
    }
}
