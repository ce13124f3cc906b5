import SkiffCgroups
import SkiffKernel
import SkiffNamespaces
import SkiffSecurity

/// Everything a container will be, as plain data, decided before anything is created: the OCI
/// spec read, checked and turned into the terms of Skiff's layers. Pure, so it is tested without
/// root; the launcher only carries it out.
public struct ContainerPlan: Equatable, Sendable {
    /// A namespace to join instead of creating (`linux.namespaces[].path`).
    public struct JoinedNamespace: Equatable, Sendable {
        public let type: NamespaceSet
        public let path: String
    }

    /// One mount, in the container's terms: `destination` is inside the rootfs.
    public struct Mount: Equatable, Sendable {
        public var destination: String
        public var source: String
        public var type: String?
        public var flags: MountFlags
        /// MS_SHARED, MS_SLAVE, ... applied by a second mount(2), as the kernel requires.
        public var propagation: MountFlags
        public var data: String?
        public var isBind: Bool { flags.contains(.bind) }
    }

    public struct Process: Equatable, Sendable {
        public var args: [String]
        public var env: [String]
        public var cwd: String
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]
        public var umask: UInt32?
        public var terminal: Bool
        public var bounding: CapabilitySet
        public var effective: CapabilitySet
        public var permitted: CapabilitySet
        public var inheritable: CapabilitySet
        public var ambient: CapabilitySet
        public var rlimits: [ResourceLimitSpec]
        public var noNewPrivileges: Bool
        public var oomScoreAdj: Int?
    }

    public var id: String
    public var bundle: String
    public var rootfs: String
    public var readonlyRootfs: Bool
    public var hostname: String?
    public var newNamespaces: NamespaceSet
    public var joinedNamespaces: [JoinedNamespace]
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]
    public var mounts: [Mount]
    public var rootPropagation: MountFlags
    public var process: Process
    public var limits: ResourceLimits
    public var cgroupPath: String?
    public var sysctl: [String: String]
    public var seccomp: SeccompProfile?
    public var maskedPaths: [String]
    public var readonlyPaths: [String]
    public var hooks: Spec.Hooks?
    public var annotations: [String: String]

    /// Whether the container joins an existing user namespace (its other new namespaces are
    /// then made after the join, by unshare, rather than by clone).
    public var joinsUserNamespace: Bool { joinedNamespaces.contains { $0.type == .user } }

    /// The PID namespace to join, whose children the init must be among.
    public var joinedPIDNamespace: String? { joinedNamespaces.first { $0.type == .pid }?.path }

    /// Reads `spec` for container `id` in `bundle` (an absolute directory).
    public init(spec: Spec, id: String, bundle: String) throws(SkiffError) {
        guard Self.isValidID(id) else {
            throw SkiffError(.invalidInput, "invalid container id \"\(id)\": use letters, digits, '_', '-' and '.', not starting with '.'")
        }
        guard spec.ociVersion.hasPrefix("1.") else {
            throw SkiffError(.invalidInput, "config.json: ociVersion \"\(spec.ociVersion)\" is not a 1.x runtime spec")
        }
        guard let root = spec.root else { throw SkiffError(.invalidInput, "config.json: root is missing") }
        guard let process = spec.process else { throw SkiffError(.invalidInput, "config.json: process is missing") }
        guard let args = process.args, !args.isEmpty else { throw SkiffError(.invalidInput, "config.json: process.args is empty") }
        guard process.cwd.hasPrefix("/") else {
            throw SkiffError(.invalidInput, "config.json: process.cwd \"\(process.cwd)\" must be absolute")
        }
        self.id = id
        self.bundle = bundle
        rootfs = root.path.hasPrefix("/") ? root.path : "\(bundle)/\(root.path)"
        readonlyRootfs = root.readonly ?? false
        hostname = spec.hostname
        let linux = spec.linux ?? Spec.Linux()

        var new: NamespaceSet = []
        var joined: [JoinedNamespace] = []
        for (index, namespace) in (linux.namespaces ?? []).enumerated() {
            guard let type = Self.namespaceTypes[namespace.type] else {
                throw SkiffError(
                    .invalidInput, "config.json: linux.namespaces[\(index)].type \"\(namespace.type)\" is not a namespace type")
            }
            if let path = namespace.path, !path.isEmpty {
                joined.append(JoinedNamespace(type: type, path: path))
            } else {
                new.insert(type)
            }
        }
        // A new PID namespace is made by clone, in the runtime's user namespace; it would not
        // belong to a user namespace the init joins only afterwards, and mounting its /proc
        // there fails. Join both, or make both new.
        if new.contains(.pid) && joined.contains(where: { $0.type == .user }) {
            throw SkiffError(
                .invalidInput,
                "config.json: linux.namespaces: a new PID namespace with a joined user namespace is not supported: join the PID namespace too, or make the user namespace new"
            )
        }
        newNamespaces = new
        // The user namespace first: it owns the others, and joining it gives the right to join them.
        joinedNamespaces = joined.filter { $0.type == .user } + joined.filter { $0.type != .user }
        uidMappings = (linux.uidMappings ?? []).map { IDMapping(containerID: $0.containerID, hostID: $0.hostID, size: $0.size) }
        gidMappings = (linux.gidMappings ?? []).map { IDMapping(containerID: $0.containerID, hostID: $0.hostID, size: $0.size) }
        if new.contains(.user) && (uidMappings.isEmpty || gidMappings.isEmpty) {
            throw SkiffError(.invalidInput, "config.json: a new user namespace needs linux.uidMappings and linux.gidMappings")
        }
        if new.contains(.uts) == false, hostname != nil, !joined.contains(where: { $0.type == .uts }) {
            throw SkiffError(.invalidInput, "config.json: hostname is set but the container has no UTS namespace of its own")
        }

        mounts = try (spec.mounts ?? []).enumerated().map { index, mount throws(SkiffError) in
            try Self.plan(mount, index: index, bundle: bundle)
        }
        rootPropagation = try Self.propagation(linux.rootfsPropagation ?? "rslave", field: "linux.rootfsPropagation")

        self.process = try Self.process(process, args: args)

        limits = try Self.limits(linux.resources)
        cgroupPath = linux.cgroupsPath
        sysctl = linux.sysctl ?? [:]
        seccomp = linux.seccomp
        if let seccomp { try seccomp.validate(source: "config.json linux.seccomp") }
        maskedPaths = linux.maskedPaths ?? []
        readonlyPaths = linux.readonlyPaths ?? []
        hooks = spec.hooks
        annotations = spec.annotations ?? [:]
    }

    /// The process part of a spec (`process`, or the process.json `exec` is given).
    static func process(_ process: Spec.Process, args: [String]) throws(SkiffError) -> Process {
        let capabilities = process.capabilities
        func set(_ names: [String]?, _ field: String) throws(SkiffError) -> CapabilitySet {
            do {
                return try CapabilitySet(names: names ?? [])
            } catch {
                throw SkiffError(.invalidInput, "config.json: process.capabilities.\(field): \(error.message)")
            }
        }
        var rlimits: [ResourceLimitSpec] = []
        for (index, limit) in (process.rlimits ?? []).enumerated() {
            let name = limit.type.lowercased().replacingOccurrences(of: "rlimit_", with: "")
            do {
                rlimits.append(
                    try ResourceLimitSpec(
                        parsing:
                            "\(name)=\(limit.soft == UInt64.max ? "-1" : "\(limit.soft)"):\(limit.hard == UInt64.max ? "-1" : "\(limit.hard)")"
                    ))
            } catch {
                throw SkiffError(.invalidInput, "config.json: process.rlimits[\(index)]: \(error.message)")
            }
        }
        return Process(
            args: args, env: process.env ?? [], cwd: process.cwd, uid: process.user.uid, gid: process.user.gid,
            additionalGids: process.user.additionalGids ?? [], umask: process.user.umask, terminal: process.terminal ?? false,
            bounding: try set(capabilities?.bounding, "bounding"), effective: try set(capabilities?.effective, "effective"),
            permitted: try set(capabilities?.permitted, "permitted"), inheritable: try set(capabilities?.inheritable, "inheritable"),
            ambient: try set(capabilities?.ambient, "ambient"), rlimits: rlimits, noNewPrivileges: process.noNewPrivileges ?? false,
            oomScoreAdj: process.oomScoreAdj)
    }

    static let namespaceTypes: [String: NamespaceSet] = [
        "pid": .pid, "network": .network, "mount": .mount, "ipc": .ipc, "uts": .uts, "user": .user, "cgroup": .cgroup,
    ]

    static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && !id.hasPrefix(".") && id.utf8.count <= 1024
            && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
    }

    /// mount(8)'s option words (runc's table): flags to set or clear, propagation, and the rest
    /// passed to the filesystem as data.
    static let flagOptions: [String: (set: MountFlags, clear: MountFlags)] = [
        "ro": (.readOnly, []), "rw": ([], .readOnly), "nosuid": (.noSuid, []), "suid": ([], .noSuid),
        "nodev": (.noDev, []), "dev": ([], .noDev), "noexec": (.noExec, []), "exec": ([], .noExec),
        "sync": (.synchronous, []), "async": ([], .synchronous), "remount": (.remount, []),
        "noatime": (.noAtime, []), "atime": ([], .noAtime), "nodiratime": (.noDirAtime, []), "diratime": ([], .noDirAtime),
        "relatime": (.relAtime, []), "norelatime": ([], .relAtime), "strictatime": (.strictAtime, []), "nostrictatime": ([], .strictAtime),
        "bind": (.bind, []), "rbind": ([.bind, .recursive], []), "defaults": ([], []),
    ]

    static func propagation(_ word: String, field: String) throws(SkiffError) -> MountFlags {
        switch word {
        case "private": return .private
        case "rprivate": return [.private, .recursive]
        case "slave": return .slave
        case "rslave": return [.slave, .recursive]
        case "shared": return .shared
        case "rshared": return [.shared, .recursive]
        case "unbindable": return .unbindable
        case "runbindable": return [.unbindable, .recursive]
        default: throw SkiffError(.invalidInput, "config.json: \(field) \"\(word)\" is not a propagation type")
        }
    }

    static func plan(_ mount: Spec.Mount, index: Int, bundle: String) throws(SkiffError) -> Mount {
        guard mount.destination.hasPrefix("/") else {
            throw SkiffError(.invalidInput, "config.json: mounts[\(index)].destination \"\(mount.destination)\" must be absolute")
        }
        var flags: MountFlags = []
        var propagation: MountFlags = []
        var data: [String] = []
        for option in mount.options ?? [] {
            if let (set, clear) = flagOptions[option] {
                flags.formUnion(set)
                flags.subtract(clear)
            } else if ["private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"].contains(option) {
                propagation = try Self.propagation(option, field: "mounts[\(index)].options")
            } else {
                data.append(option)
            }
        }
        let type = mount.type.flatMap { $0 == "none" || $0.isEmpty ? nil : $0 }
        var source = mount.source ?? type ?? "none"
        // A relative bind source is relative to the bundle (runtime-spec config.md).
        if flags.contains(.bind), !source.hasPrefix("/") { source = "\(bundle)/\(source)" }
        if type == "bind" { flags.insert(.bind) }
        return Mount(
            destination: mount.destination, source: source, type: type == "bind" ? nil : type, flags: flags, propagation: propagation,
            data: data.isEmpty ? nil : data.joined(separator: ","))
    }

    static func limits(_ resources: Spec.Linux.Resources?) throws(SkiffError) -> ResourceLimits {
        var limits = ResourceLimits()
        guard let resources else { return limits }
        if let limit = resources.memory?.limit, limit > 0 { limits.memoryBytes = UInt64(limit) }
        if let cpu = resources.cpu {
            limits.cpuShares = cpu.shares
            if let quota = cpu.quota, quota > 0 {
                limits.cpus = Double(quota) / Double(cpu.period ?? ResourceLimits.cpuPeriodMicroseconds)
            }
            limits.cpuset = cpu.cpus.flatMap { $0.isEmpty ? nil : $0 }
        }
        if let pids = resources.pids?.limit, pids > 0 { limits.pids = UInt64(pids) }
        // 0 means unset, as Docker sends it and runc reads it.
        if let weight = resources.blockIO?.weight, weight != 0 {
            guard (10...1000).contains(weight) else {
                throw SkiffError(.invalidInput, "config.json: linux.resources.blockIO.weight \(weight) is outside 10–1000")
            }
            limits.blkioWeight = UInt64(weight)
        }
        if let devices = resources.devices {
            // The spec lists rules in order, deny-all first by convention; v1's files take the
            // allowed ones after a blanket deny. The standard devices are always allowed, as runc
            // does: the runtime creates them in /dev, and nothing works without /dev/null.
            limits.deviceRules =
                ResourceLimits.containerDevices
                + devices.filter(\.allow).map { device in
                    let type = device.type ?? "a"
                    let major = device.major.map(String.init) ?? "*"
                    let minor = device.minor.map(String.init) ?? "*"
                    return type == "a" ? "a" : "\(type) \(major):\(minor) \(device.access ?? "rwm")"
                }
        }
        return limits
    }
}
