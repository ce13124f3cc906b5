import Foundation
import SkiffCgroups
import SkiffKernel
import SkiffNamespaces
import SkiffRootfs
import SkiffSecurity

/// What the container's first process does between clone and execve, as one ordered list.
/// Each step says why it comes where it does.
struct ContainerInit {
    let plan: ContainerPlan
    let kernel: Kernel
    /// The compiled seccomp filter, or nil.
    let filter: [UInt8]?
    /// The exec FIFO's path on the host; opened before pivot_root, when it can still be named.
    let execFIFO: String
    /// The caller's console socket, connected by the parent, when the process has a terminal.
    let consoleSocket: Int32?
    /// The container's cgroup, for a `cgroup` mount in the spec.
    let cgroupHierarchies: [CgroupHierarchy]
    /// The state the in-container hooks read; its pid is the init's own, as seen inside.
    let state: ContainerState

    func run(side: ChildSide) throws -> Never {
        // Join namespaces by path before anything else: every later step must happen inside them.
        // A PID namespace was joined by the parent: it applies to the children of whoever joins.
        for namespace in plan.joinedNamespaces where namespace.type != .pid {
            try kernel.run(.setns(path: namespace.path, type: namespace.type), why: "join the \(namespace.type) namespace the spec names")
        }
        // With a joined user namespace the new ones are made only now, so that it owns them.
        if plan.joinsUserNamespace && !plan.newNamespaces.isEmpty {
            try kernel.run(.unshare(plan.newNamespaces), why: "new namespaces, owned by the joined user namespace")
        }
        // Root of the user namespace before touching files: what we create is then owned by
        // the mapped root, not by an unmapped id.
        if plan.newNamespaces.contains(.user) || plan.joinsUserNamespace {
            try kernel.switchUser(uid: 0, gid: 0, groups: [], why: "root of the container's user namespace while it is set up")
        }
        if plan.newNamespaces.contains(.mount) { try setUpMounts() }
        let fifo = try ExecFIFO(holding: execFIFO)
        var hookState = state
        hookState.pid = getpid()
        try Hooks.run(plan.hooks?.createContainer ?? [], state: hookState)
        if plan.newNamespaces.contains(.mount) {
            try Rootfs.pivot(into: RootfsPlan(unchecked: plan.rootfs), kernel: kernel)
        } else {
            try kernel.run(.chdir(plan.rootfs), why: "no mount namespace: run in the rootfs without pivot_root")
        }
        if let hostname = plan.hostname { try kernel.run(.sethostname(hostname), why: "the spec's hostname") }
        // sysctls after /proc is mounted (they are files under /proc/sys) and before it is
        // made read-only.
        for (key, value) in plan.sysctl.sorted(by: { $0.key < $1.key }) {
            try kernel.run(.writeFile("/proc/sys/" + key.replacingOccurrences(of: ".", with: "/"), contents: value), why: "sysctl \(key)")
        }
        if plan.newNamespaces.contains(.mount) {
            try ProtectedPaths.mask(plan.maskedPaths, kernel: kernel)
            try ProtectedPaths.makeReadOnly(plan.readonlyPaths, kernel: kernel)
            if plan.readonlyRootfs { try ProtectedPaths.makeRootReadOnly(kernel: kernel) }
        }
        // The terminal in the container's own devpts, before the user switch can take the right
        // to open it away.
        if let consoleSocket { try Terminal.setUp(sendingMasterOver: consoleSocket, kernel: kernel) }
        // Created: tell the parent, then wait at the FIFO until `start` opens its other end.
        try ProcessSetup(process: plan.process, filter: filter).run(kernel: kernel) {
            side.reportReady()
            try fifo.waitForStart()
            hookState.status = .created
            try Hooks.run(plan.hooks?.startContainer ?? [], state: hookState)
        }
    }

    /// Propagation, the rootfs as a mount point, the spec's mounts in order, /dev's nodes.
    private func setUpMounts() throws {
        try kernel.run(
            .mount(source: nil, target: "/", fstype: nil, flags: plan.rootPropagation, data: nil),
            why: "the spec's root propagation: host mounts may reach in, ours never out")
        try kernel.run(
            .mount(source: plan.rootfs, target: plan.rootfs, fstype: nil, flags: [.bind, .recursive], data: nil),
            why: "pivot_root needs the new root to be a mount point")
        let userNamespace = plan.newNamespaces.contains(.user) || plan.joinsUserNamespace
        for mount in plan.mounts {
            let target = plan.rootfs + mount.destination
            if mount.type == "cgroup" || mount.type == "cgroup2" {
                try mountCgroups(at: target, readOnly: mount.flags.contains(.readOnly))
                continue
            }
            try prepare(target, forBindOf: mount.isBind ? mount.source : nil)
            // sysfs belongs to the network namespace: without a new one (or inside a user
            // namespace that does not own it), bind the host's read-only instead, as runc does.
            if mount.type == "sysfs" && (!plan.newNamespaces.contains(.network) && userNamespace) {
                try kernel.run(
                    .mount(source: "/sys", target: target, fstype: nil, flags: [.bind, .recursive], data: nil),
                    why: "sysfs is not ours to mount")
                try kernel.run(
                    .mount(
                        source: nil, target: target, fstype: nil, flags: [.remount, .bind, .readOnly, .noSuid, .noDev, .noExec], data: nil),
                    why: "read-only")
                continue
            }
            try kernel.run(
                .mount(source: mount.source, target: target, fstype: mount.type, flags: mount.flags, data: mount.data),
                why: "\(mount.destination) as the spec lists it")
            // A bind mount takes flags such as ro only on a remount.
            let extra = mount.flags.subtracting([.bind, .recursive, .remount])
            if mount.isBind && !extra.isEmpty {
                try kernel.run(
                    .mount(source: nil, target: target, fstype: nil, flags: extra.union([.remount, .bind]), data: nil),
                    why: "and its flags, which a bind mount takes only on remount")
            }
            if !mount.propagation.isEmpty {
                try kernel.run(
                    .mount(source: nil, target: target, fstype: nil, flags: mount.propagation, data: nil), why: "its propagation")
            }
            if mount.destination == "/dev" && mount.type == "tmpfs" {
                try Rootfs.createDevices(in: target, userNamespace ? .bindFromHost : .create, kernel: kernel)
                try Rootfs.createLinks(in: target, kernel: kernel)
            }
        }
    }

    /// The container's own cgroup as its /sys/fs/cgroup, as runc does without a cgroup namespace:
    /// v1 gets a tmpfs with the container's directory of each hierarchy bound under the
    /// hierarchy's name (and `cpu` -> `cpu,cpuacct` links, as on the host); v2 gets its one
    /// directory bound over the mount point. The container sees its limits and counters and
    /// nothing of the host's other cgroups.
    private func mountCgroups(at target: String, readOnly: Bool) throws {
        try prepare(target, forBindOf: nil)
        let readOnlyFlags: MountFlags = readOnly ? [.readOnly] : []
        let isV1 = cgroupHierarchies.contains { !$0.name.isEmpty }
        if isV1 {
            try kernel.run(
                .mount(source: "tmpfs", target: target, fstype: "tmpfs", flags: [.noSuid, .noDev, .noExec], data: "mode=755"),
                why: "a directory of hierarchies, as the host's /sys/fs/cgroup")
        }
        for hierarchy in cgroupHierarchies {
            let point = hierarchy.name.isEmpty ? target : "\(target)/\(hierarchy.name)"
            if !hierarchy.name.isEmpty { try kernel.run(.mkdir(point, mode: 0o755), why: "the \(hierarchy.name) hierarchy") }
            try kernel.run(
                .mount(source: hierarchy.directory, target: point, fstype: nil, flags: [.bind, .recursive], data: nil),
                why: "the container's own cgroup, never the host's others")
            try kernel.run(
                .mount(
                    source: nil, target: point, fstype: nil, flags: readOnlyFlags.union([.remount, .bind, .noSuid, .noDev, .noExec]),
                    data: nil),
                why: readOnly ? "read-only: limits are the runtime's to set" : "no devices or set-uid files")
            for alias in hierarchy.aliases where alias != hierarchy.name {
                try kernel.run(.symlink(target: hierarchy.name, path: "\(target)/\(alias)"), why: "\(alias) reaches \(hierarchy.name)")
            }
        }
        if isV1 && readOnly {
            try kernel.run(
                .mount(source: nil, target: target, fstype: nil, flags: [.remount, .readOnly, .noSuid, .noDev, .noExec], data: "mode=755"),
                why: "and the directory of hierarchies read-only too")
        }
    }

    /// Makes the mount point: a directory, or an empty file for a file bind; every component
    /// checked so that a symlink in the rootfs cannot point the mount at the host.
    private func prepare(_ target: String, forBindOf source: String?) throws {
        var current = plan.rootfs
        let components = target.dropFirst(plan.rootfs.count).split(separator: "/")
        for (index, component) in components.enumerated() {
            current += "/\(component)"
            let last = index == components.count - 1
            if last, let source, Files.isDirectory(source) == false {
                if !Files.exists(current) { try kernel.run(.createFile(current), why: "a file to bind onto") }
            } else {
                try kernel.run(.mkdir(current, mode: 0o755), why: "mount point, never through a symlink")
            }
        }
    }
}

/// The last steps before execve, for a container's first process and for one that `exec` adds:
/// limits, the seccomp filter, capabilities, the user, the working directory, no_new_privs.
struct ProcessSetup {
    let process: ContainerPlan.Process
    let filter: [UInt8]?

    /// Runs the steps, then `beforeExec` (the init waits for `start` there), then execve.
    func run(kernel: Kernel, beforeExec: () throws -> Void = {}) throws -> Never {
        // Limits while CAP_SYS_RESOURCE may still raise them.
        for limit in process.rlimits { try limit.apply(kernel: kernel) }
        if let adjustment = process.oomScoreAdj {
            try kernel.run(.writeFile("/proc/self/oom_score_adj", contents: "\(adjustment)"), why: "the OOM killer's preference")
        }
        // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, which the capability
        // steps below give up: load it now (the profile must then allow those steps, as Docker's
        // does). With no_new_privs it goes last, as late as possible.
        if !process.noNewPrivileges, let filter { try Seccomp.load(filter, kernel: kernel) }
        // Bounding set first (needs CAP_SETPCAP), then the user with its capabilities kept
        // across the uid change, then the exact sets the spec lists.
        try Capabilities.limitBoundingSet(to: process.bounding, kernel: kernel)
        try kernel.run(.setKeepCapabilities(true), why: "keep the permitted set across the switch to the spec's user")
        try kernel.switchUser(uid: process.uid, gid: process.gid, groups: process.additionalGids, why: "the spec's user")
        try kernel.run(.setKeepCapabilities(false), why: "and no more")
        try Capabilities.set(
            effective: process.effective, permitted: process.permitted, inheritable: process.inheritable, ambient: process.ambient,
            kernel: kernel)
        if let umask = process.umask { try kernel.run(.setUmask(umask), why: "the spec's umask") }
        try kernel.run(.chdir(process.cwd), why: "the spec's working directory, as the spec's user")
        if process.noNewPrivileges { try kernel.run(.setNoNewPrivileges, why: "execve can never raise privileges again") }
        try beforeExec()
        // Seccomp last: nothing above needs to pass the filter.
        if process.noNewPrivileges, let filter { try Seccomp.load(filter, kernel: kernel) }
        try kernel.exec(process.args, environment: process.env, why: "the container's process")
    }
}
