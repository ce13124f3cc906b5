import Crypto
import Foundation
import SkiffCgroups
import SkiffJSON
import SkiffKernel
import SkiffNamespaces
import SkiffSecurity

/// The OCI runtime's operations (runtime-spec runtime.md): create, start, state, kill, delete,
/// and run = create + start + wait + delete. Each is a separate process in a real deployment
/// (containerd runs `create`, later `start`...), so everything between them is in the state
/// directory.
public struct Runtime {
    public let store: StateStore
    public let kernel: Kernel

    public init(store: StateStore = StateStore(), kernel: Kernel = Kernel()) {
        self.store = store
        self.kernel = kernel
    }

    /// Reads `bundle`/config.json into a plan; a malformed file is an error naming the field.
    public func plan(id: String, bundle: String) throws(SkiffError) -> (Spec, ContainerPlan) {
        let directory = Files.absolute(bundle)
        let file = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw SkiffError(.invalidInput, "no config.json in the bundle \(directory): create one with `skiff-runtime spec`")
        }
        let spec = try JSONInput.decode(
            Spec.self, from: data, label: "config.json", invalid: "config.json in \(directory) is not valid JSON")
        let plan = try ContainerPlan(spec: spec, id: id, bundle: directory)
        guard Files.isDirectory(plan.rootfs) == true else {
            throw SkiffError(.invalidInput, "config.json: root.path \(plan.rootfs) is not a directory")
        }
        return (spec, plan)
    }

    /// A created container: its init exists in all its namespaces and its cgroup, and waits.
    public struct Launched {
        public let process: ContainerProcess
        public let state: ContainerState
    }

    /// `create`: the container up to the point where only execve is left, then returns.
    /// With `diesWithCaller` the init gets SIGKILL when the calling process dies (an engine's
    /// monitor); a runtime's `create`, which exits while the container waits, leaves it off.
    public func create(id: String, bundle: String, consoleSocket: String? = nil, diesWithCaller: Bool = false) throws -> Launched {
        let (spec, plan) = try plan(id: id, bundle: bundle)
        guard plan.process.terminal == (consoleSocket != nil) else {
            throw SkiffError(
                .invalidInput,
                plan.process.terminal
                    ? "config.json: process.terminal is true: give --console-socket, where the pty master is sent"
                    : "--console-socket is given, but config.json's process.terminal is false")
        }
        do {
            // 0711: a container init in a user namespace must pass through to reach its FIFO.
            try Files.makeDirectories(store.root, mode: 0o711)
        } catch {
            throw SkiffError(.setupFailed, "cannot create the state directory \(store.root)", cause: error)
        }
        guard mkdir(store.directory(id), 0o711) == 0 else {
            throw SkiffError(
                .invalidInput, errno == EEXIST ? "container \(id) already exists" : "cannot create \(store.directory(id))",
                cause: SyscallError("mkdir", path: store.directory(id)))
        }
        do {
            return try launch(spec: spec, plan: plan, consoleSocket: consoleSocket, diesWithCaller: diesWithCaller)
        } catch {
            store.remove(id)
            throw error
        }
    }

    private func launch(spec: Spec, plan: ContainerPlan, consoleSocket: String?, diesWithCaller: Bool) throws -> Launched {
        try ExecFIFO.create(at: store.execFIFO(plan.id), kernel: kernel)
        let filter = try plan.seccomp.map { profile throws(SkiffError) in try compiledFilter(profile) }
        let cgroupPath = plan.cgroupPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/skiff/\(plan.id)"
        let cgroup = try Cgroups.open(path: cgroupPath, limits: plan.limits, layout: .host(), kernel: kernel)
        try cgroup.create()
        var created = ContainerState(
            id: plan.id, status: .creating, pid: 0, bundle: plan.bundle, annotations: plan.annotations, created: StateStore.timestamp())
        created.cgroupPath = cgroup.paths.joined(separator: ":")
        created.rootfs = plan.rootfs
        try store.save(created)
        let console = try consoleSocket.map { path throws(SyscallError) in try Terminal.connect(to: path) }
        defer { if let console { close(console) } }
        let initSteps = ContainerInit(
            plan: plan, kernel: kernel, filter: filter, execFIFO: store.execFIFO(plan.id), consoleSocket: console,
            cgroupHierarchies: cgroup.hierarchies, state: created)
        let process: ContainerProcess
        do {
            process = try inPIDNamespace(plan.joinedPIDNamespace) {
                try ContainerProcess.clone(
                    plan.joinsUserNamespace ? [] : plan.newNamespaces, kernel: kernel, dieWithParent: diesWithCaller,
                    keeping: console.map { [$0] } ?? [], why: "the container's init"
                ) { side in
                    try initSteps.run(side: side)
                }
            }
        } catch {
            try? cgroup.destroy()
            throw error
        }
        do {
            try process.start {
                if plan.newNamespaces.contains(.user) {
                    try UserNamespace.writeMaps(for: process.pid, uids: plan.uidMappings, gids: plan.gidMappings, kernel: kernel)
                }
                try cgroup.add(process.pid)
                var state = created
                state.pid = process.pid
                // createRuntime and prestart hooks: the namespaces exist, the root is not yet pivoted.
                try Hooks.run((spec.hooks?.prestart ?? []) + (spec.hooks?.createRuntime ?? []), state: state)
            }
            try process.waitUntilReady()
        } catch {
            Glibc.kill(process.pid, SIGKILL)
            _ = try? process.wait()
            try? cgroup.destroy()
            throw error
        }
        var state = created
        state.pid = process.pid
        state.status = .created
        state.processStartTime = StateStore.startTime(of: process.pid)
        try store.save(state)
        return Launched(process: process, state: state)
    }

    /// Runs `body` (which clones) with the children of this process born in the PID namespace at
    /// `path`, then returns to our own: hooks started later must not land in the container's.
    private func inPIDNamespace<Value>(_ path: String?, _ body: () throws -> Value) throws -> Value {
        guard let path else { return try body() }
        try kernel.run(.setns(path: path, type: .pid), why: "the PID namespace the spec names, for the init about to be made")
        defer { try? kernel.run(.setns(path: "/proc/self/ns/pid", type: .pid), why: "back to our own PID namespace for later children") }
        return try body()
    }

    /// The profile compiled to BPF, from a cache in the state directory keyed by the sha256 of
    /// the profile: compiling Docker's default profile takes libseccomp milliseconds that every
    /// container start would otherwise pay again.
    func compiledFilter(_ profile: SeccompProfile) throws(SkiffError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        guard let key = try? encoder.encode(profile) else { return try profile.compile() }
        let digest = Files.hexadecimal(SHA256.hash(data: key))
        let directory = store.root + "/.seccomp"
        let file = "\(directory)/\(digest).bpf"
        if let cached = FileManager.default.contents(atPath: file), !cached.isEmpty, cached.count % 8 == 0 { return Array(cached) }
        let program = try profile.compile()
        // Written atomically: a concurrent start never reads half a filter. A cache that cannot
        // be written only costs the next start a compile.
        if (try? Files.makeDirectories(directory, mode: 0o700)) != nil { try? Files.writeAtomically(file, program) }
        return program
    }

    /// `start`: releases a created container's init to execve the process.
    public func start(id: String) throws {
        let state = try store.load(id)
        guard state.status == .created else {
            throw SkiffError(
                .invalidInput, "container \(id) is \(state.status.rawValue), not created: only a created container can be started")
        }
        do {
            try ExecFIFO.start(at: store.execFIFO(id))
        } catch {
            throw SkiffError(.setupFailed, "cannot start \(id)", cause: error)
        }
        try? FileManager.default.removeItem(atPath: store.execFIFO(id))
        if let spec = try? plan(id: id, bundle: state.bundle).0 {
            var running = state
            running.status = .running
            try? Hooks.run(spec.hooks?.poststart ?? [], state: running)
        }
    }

    /// `kill`: a signal to the init, or with `all` to every process in its cgroup.
    public func kill(id: String, signal: Int32, all: Bool) throws {
        let state = try store.load(id)
        guard state.status == .created || state.status == .running || state.status == .paused else {
            throw SkiffError(.invalidInput, "container \(id) is not running")
        }
        let targets = all ? processes(of: state) : [state.pid]
        for pid in targets {
            // A process that exited meanwhile (ESRCH) has nothing left to signal.
            let result = Result { () throws(SyscallError) in
                try kernel.run(.kill(pid: pid, signal: signal), why: "the signal the caller asked for")
            }
            if case .failure(let error) = result, error.errno != ESRCH { throw error }
        }
    }

    /// `update`: new resource limits for a container that exists (runtime-spec linux.resources).
    public func update(id: String, resources: Spec.Linux.Resources) throws {
        let state = try store.load(id)
        guard state.status != .stopped else { throw SkiffError(.invalidInput, "container \(id) is stopped") }
        let (_, plan) = try plan(id: id, bundle: state.bundle)
        let path = plan.cgroupPath.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/skiff/\(plan.id)"
        var limits = try ContainerPlan.limits(resources)
        // Device rules are not changed by update, as runc leaves them.
        limits.deviceRules = nil
        try Cgroups.open(path: path, limits: limits, layout: .host(), kernel: kernel).writeLimits()
    }

    /// `pause` and `resume`: freeze or thaw every process of the container (cgroup freezer).
    public func setPaused(id: String, _ paused: Bool) throws {
        let state = try store.load(id)
        guard state.status == (paused ? .running : .paused) else {
            throw SkiffError(
                .invalidInput,
                "container \(id) is \(state.status.rawValue): only a \(paused ? "running" : "paused") container can be \(paused ? "paused" : "resumed")"
            )
        }
        try Cgroups.setFrozen(paused, paths: state.cgroupPaths, kernel: kernel)
    }

    /// `delete`: removes a stopped container's cgroup and state; with `force`, kills it first.
    public func delete(id: String, force: Bool) throws {
        let state = try store.load(id)
        if state.status != .stopped {
            guard force else {
                throw SkiffError(.invalidInput, "container \(id) is \(state.status.rawValue): stop it first, or delete --force")
            }
            for pid in processes(of: state) + [state.pid] { Glibc.kill(pid, SIGKILL) }
            // A frozen process dies of SIGKILL only once thawed.
            if state.status == .paused { try? setPaused(id: id, false) }
            for _ in 0..<500 where store.currentStatus(of: state) != .stopped { usleep(10_000) }
        }
        try Cgroups.remove(state.cgroupPaths, kernel: kernel)
        store.remove(id)
        if let spec = try? plan(id: id, bundle: state.bundle).0 {
            var stopped = state
            stopped.status = .stopped
            try? Hooks.run(spec.hooks?.poststop ?? [], state: stopped)
        }
    }

    /// `run`: create, start, wait for the process, delete; the exit status is the process's.
    public func run(id: String, bundle: String, detach: Bool, consoleSocket: String? = nil) throws -> (ExitStatus?, ContainerState) {
        let launched = try create(id: id, bundle: bundle, consoleSocket: consoleSocket)
        do {
            try start(id: id)
        } catch {
            // An init that died after it was ready reported why: that is the error to show.
            _ = try launched.process.wait()
            throw error
        }
        if detach {
            launched.process.release()
            return (nil, launched.state)
        }
        let status = try launched.process.wait()
        try delete(id: id, force: true)
        return (status, launched.state)
    }

    /// `exec`: another process in a running container: its namespaces joined (setns(2)), its
    /// cgroup entered, and the container's security applied to `process` (its own user, caps,
    /// rlimits and no_new_privs; the container's seccomp profile). With `detach`, returns once
    /// the process runs; otherwise waits and returns its status.
    public func exec(id: String, process specProcess: Spec.Process, detach: Bool, consoleSocket: String? = nil) throws -> (
        status: ExitStatus?, pid: Int32
    ) {
        let state = try store.load(id)
        guard state.status == .running else {
            throw SkiffError(.invalidInput, "container \(id) is \(state.status.rawValue): exec needs a running container")
        }
        let (_, plan) = try plan(id: id, bundle: state.bundle)
        guard let args = specProcess.args, !args.isEmpty else {
            throw SkiffError(.invalidInput, "exec: no command: give one, or args in --process")
        }
        let process = try ContainerPlan.process(specProcess, args: args)
        let filter = try plan.seccomp.map { profile throws(SkiffError) in try compiledFilter(profile) }
        let namespaces = plan.newNamespaces.union(NamespaceSet(plan.joinedNamespaces.map(\.type)))
        let path = { (name: String) in "/proc/\(state.pid)/ns/\(name)" }
        // A PID namespace applies to the children of whoever joins it: join it here, before the
        // clone, so that the new process is born inside.
        if namespaces.contains(.pid) {
            try kernel.run(.setns(path: path("pid"), type: .pid), why: "the container's PID namespace, for the process about to be made")
        }
        guard (specProcess.terminal ?? false) == (consoleSocket != nil) else {
            throw SkiffError(
                .invalidInput,
                consoleSocket == nil
                    ? "exec: a terminal needs --console-socket" : "exec: --console-socket needs a process with a terminal (-t)")
        }
        let console = try consoleSocket.map { path throws(SyscallError) in try Terminal.connect(to: path) }
        defer { if let console { close(console) } }
        let child = try ContainerProcess.clone(
            [], kernel: kernel, dieWithParent: !detach, keeping: console.map { [$0] } ?? [], why: "the process to add to the container"
        ) { side in
            // The user namespace first: it owns the others, and joining it gives the rights to
            // join them. The mount namespace last: after it, /proc is the container's.
            for (type, name) in [
                (NamespaceSet.user, "user"), (.ipc, "ipc"), (.uts, "uts"), (.network, "net"), (.cgroup, "cgroup"), (.mount, "mnt"),
            ]
            where namespaces.contains(type) {
                try kernel.run(.setns(path: path(name), type: type), why: "join the container's \(name) namespace")
            }
            if namespaces.contains(.mount) { try kernel.run(.chdir("/"), why: "the container's root") }
            // After the mount namespace: the pty comes from the container's own devpts.
            if let console { try Terminal.setUp(sendingMasterOver: console, kernel: kernel) }
            try ProcessSetup(process: process, filter: filter).run(kernel: kernel)
        }
        try child.start {
            for directory in state.cgroupPaths {
                try kernel.run(
                    .writeFile(directory + "/cgroup.procs", contents: "\(child.pid)"), why: "into the container's cgroup, under its limits")
            }
        }
        if detach {
            try child.waitUntilExec()
            child.release()
            return (nil, child.pid)
        }
        return (try child.wait(), child.pid)
    }

    /// The pids in the container's cgroup (the first hierarchy's cgroup.procs).
    public func processes(of state: ContainerState) -> [Int32] {
        guard let path = state.cgroupPaths.first else { return [state.pid] }
        return ((try? Files.readText("\(path)/cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
    }

}
