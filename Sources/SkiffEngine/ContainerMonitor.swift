import Foundation
import SkiffImage
import SkiffKernel
import SkiffRootfs
import SkiffRuntime

/// Runs one container of the store from start to end, as its parent: mounts its root in a mount
/// table of its own (gone with this process, whatever ends it), creates it with the runtime,
/// records it running, starts it, waits for it, records how it ended, and removes it if asked.
/// `skiff run -d` starts it as a separate process in its own session (`skiff monitor ID`), with
/// the container's output going to the log file; `skiff run` is its own monitor, in the
/// foreground. Engine without a daemon: each container has a small parent of its own.
public struct ContainerMonitor {
    public let images: ImageStore
    public let containers: ContainerStore
    let kernel: Kernel

    public init(root: String, kernel: Kernel = Kernel()) {
        images = ImageStore(root: root)
        containers = ContainerStore(root: root)
        self.kernel = kernel
    }

    /// A mount table of this process's own, so that the container's root, mounted next, goes
    /// away with this process. Only while the process has one thread (unshare(2)).
    public func isolateMounts() throws {
        try Mounts.isolateThisProcess(kernel: kernel)
    }

    var runtime: Runtime { Runtime(store: StateStore(root: images.root + "/runtime"), kernel: kernel) }

    /// Runs container `id` to its end and returns its exit status. `started` is called once it
    /// runs (or with the error that stopped it from running): the detached monitor tells
    /// `skiff run -d` there, which then prints the id and returns.
    /// Call `isolateMounts` first, while this process has one thread.
    public func run(id: String, started: (SkiffError?) -> Void) throws -> ExitStatus {
        let launched: Runtime.Launched
        let container: ImageContainer
        do {
            (launched, container) = try create(id: id)
        } catch {
            let failure = error as? SkiffError ?? SkiffError(.setupFailed, "cannot create container \(id.prefix(12))", cause: error)
            try? containers.update(id) { $0.status = .created }
            started(failure)
            if (try? containers.load(id))?.autoRemove == true { try? containers.remove(id) }
            throw failure
        }
        try containers.update(id) { record in
            record.status = .running
            record.pid = launched.state.pid
            record.monitorPID = getpid()
            record.startedAt = StateStore.timestamp()
            record.exitCode = nil
            record.finishedAt = nil
        }
        let status: ExitStatus
        do {
            try runtime.start(id: id)
            started(nil)
            status = try launched.process.wait()
        } catch {
            _ = try? launched.process.wait()
            try? runtime.delete(id: id, force: true)
            try? containers.update(id) { record in
                record.status = .exited
                record.exitCode = 127
                record.finishedAt = StateStore.timestamp()
            }
            let failure = error as? SkiffError ?? SkiffError(.setupFailed, "cannot start container \(id.prefix(12))", cause: error)
            started(failure)
            throw failure
        }
        try? runtime.delete(id: id, force: true)
        let record = try containers.load(id)
        if record.autoRemove {
            try container.remove()
        } else {
            try containers.update(id) { record in
                record.status = .exited
                record.exitCode = status.code
                record.finishedAt = StateStore.timestamp()
            }
        }
        return status
    }

    /// The root mounted, the spec written from the image's config and the run's options, and the
    /// container created by the runtime: its init waits in all its namespaces.
    private func create(id: String) throws -> (Runtime.Launched, ImageContainer) {
        let record = try containers.load(id)
        let options = record.options
        let image = try images.resolve(record.imageID)
        let container = try ImageContainer(root: images.root, id: id, kernel: kernel)
        let hostname = options.hostname ?? String(id.prefix(12))
        _ = try container.mountRootfs(layers: record.layers, hostname: hostname)
        let spec = try RunPlan.spec(
            image: image.config, options: options, rootfs: container.rootfs, id: id, passwd: container.readRootfsFile("/etc/passwd"),
            group: container.readRootfsFile("/etc/group"), hostEnvironment: ProcessInfo.processInfo.environment)
        try container.writeSpec(spec)
        // A runtime state left by a monitor that was killed: the container is gone with it.
        try? runtime.delete(id: id, force: true)
        return (try runtime.create(id: id, bundle: container.bundle, diesWithCaller: true), container)
    }

    /// Every container, after repairing those whose monitor was killed: what the kernel's
    /// parent-death signal did not end (it does not survive a change of user) is killed through
    /// the runtime, which also removes its cgroup and state. `skiff ps` and `rm` go through here.
    public func containersRepaired() -> [ContainerRecord] {
        containers.all().map(repaired)
    }

    /// `record`, repaired if its monitor is gone (see `containersRepaired`).
    public func repaired(_ record: ContainerRecord) -> ContainerRecord {
        guard record.status == .running, let monitor = record.monitorPID, !ProcFS().isRunning(monitor) else { return record }
        try? runtime.delete(id: record.id, force: true)
        var fixed = record
        fixed.status = .exited
        fixed.exitCode = 137
        fixed.finishedAt = StateStore.timestamp()
        try? containers.update(record.id) { $0 = fixed }
        return fixed
    }

    /// The container a user means, which must be running.
    public func running(_ text: String) throws(SkiffError) -> ContainerRecord {
        let record = repaired(try containers.resolve(text))
        guard record.status == .running else { throw SkiffError(.invalidInput, "container \(text) is not running") }
        return record
    }

    /// Sends `signal` to the container's first process, through the runtime, which checks that
    /// the pid is still the container's (its start time) before it signals.
    public func signal(id: String, _ signal: Int32) throws {
        try runtime.kill(id: id, signal: signal, all: false)
    }

    /// Freezes (or thaws) every process of running container `id` with the cgroup freezer.
    public func setPaused(id: String, _ paused: Bool) throws {
        try runtime.setPaused(id: id, paused)
    }

    /// Whether container `id` is frozen now.
    public func isPaused(id: String) -> Bool {
        (try? runtime.store.load(id))?.status == .paused
    }

    /// Stops container `id` as `docker stop` does: `signal` (SIGTERM unless the image says
    /// otherwise), up to `timeout` seconds for it to end, then SIGKILL.
    public func stop(id: String, signal: Int32 = SIGTERM, timeout: Int = 10) throws {
        let record = try containers.load(id)
        guard record.status == .running, let pid = record.pid else { return }
        try? runtime.kill(id: id, signal: signal, all: false)
        // Bounded: 10 ms steps up to the timeout.
        for _ in 0..<(max(0, timeout) * 100) where ProcFS().isRunning(pid) { usleep(10_000) }
        if ProcFS().isRunning(pid) { try? runtime.kill(id: id, signal: SIGKILL, all: true) }
        // The monitor records the end; wait (bounded) until it has.
        for _ in 0..<500 where (try? containers.load(id))?.status == .running { usleep(10_000) }
    }

    /// Runs `command` in running container `id` with the container's own process settings
    /// (capabilities, seccomp, environment) and the given changes; returns its exit status.
    public func exec(id: String, command: [String], environment: [String], workingDirectory: String?, user: String?) throws
        -> ExitStatus
    {
        let bundle = ImageContainer.bundle(root: images.root, id: id)
        guard let data = FileManager.default.contents(atPath: bundle + "/config.json"),
            var process = try? JSONDecoder().decode(Spec.self, from: data).process
        else {
            throw SkiffError(.setupFailed, "container \(id.prefix(12)) has no readable config.json in \(bundle)")
        }
        process.args = command
        process.env = try ImageProcess.merged(process.env ?? [], environment, hostEnvironment: ProcessInfo.processInfo.environment)
        process.terminal = false
        if let workingDirectory {
            guard workingDirectory.hasPrefix("/") else {
                throw SkiffError(.invalidInput, "working directory \"\(workingDirectory)\" must be absolute")
            }
            process.cwd = workingDirectory
        }
        if let user {
            let parts = user.split(separator: ":", maxSplits: 1).map { UInt32($0) }
            guard let uid = parts.first ?? nil, parts.count == 1 || parts[1] != nil else {
                throw SkiffError(.invalidInput, "exec -u \(user): give a numeric UID[:GID]")
            }
            process.user = Spec.Process.User(uid: uid, gid: parts.count == 2 ? parts[1]! : uid)
            if uid != 0 {
                process.capabilities?.effective = []
                process.capabilities?.permitted = []
            }
        }
        return try runtime.exec(id: id, process: process, detach: false).status ?? .exited(0)
    }
}
