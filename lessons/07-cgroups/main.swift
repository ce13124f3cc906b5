import ArgumentParser
// Lesson 07: cgroups. Namespaces decide what a container sees; cgroups decide how much it may use:
// memory, CPU time, processes.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson07Cgroups: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson07-cgroups",
        abstract: "Run a command with limits on memory, CPU and processes (cgroups v1 or v2).")

    @Option(help: "The hostname inside.") var hostname = "skiff"
    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false

    @Option(parsing: .unconditional, help: "Memory limit, e.g. 64m (units b, k, m, g); no swap on top.") var memory: String?
    @Option(parsing: .unconditional, help: "CPU time as a number of CPUs, e.g. 0.5.") var cpus: String?
    @Option(help: "Relative CPU weight under contention (2-262144, default 1024).") var cpuShares: String?
    @Option(help: "CPUs the command may run on, e.g. 0 or 0-1.") var cpuset: String?
    @Option(parsing: .unconditional, help: "The most processes the command may have at once.") var pids: String?
    @Option(help: "Relative block I/O weight (10-1000), where the I/O scheduler has weights.") var blkioWeight: String?
    @Flag(help: "Print the cgroup's counters after the command ends.") var stats = false

    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let mapping = try IDMapping(rootTo: mapRootTo)
        var plan = try RootfsPlan(validating: rootfs)
        plan.devices = .bindFromHost  // lesson 05
        let command = lesson.commandLine
        let environment = plan.environment(hostname: hostname.value)
        let useInit = self.`init`

        // The new layer. Every limit is checked before anything is created.
        var limits = ResourceLimits()
        limits.memoryBytes = try memory.map(ResourceLimits.parseMemory)
        limits.cpus = try cpus.map { try ResourceLimits.parseCPUs($0) }
        limits.cpuShares = try cpuShares.map(ResourceLimits.parseCPUShares)
        limits.cpuset = try cpuset.map { try ResourceLimits.parseCPUSet($0) }
        limits.pids = try pids.map(ResourceLimits.parsePids)
        limits.blkioWeight = try blkioWeight.map(ResourceLimits.parseBlkioWeight)
        // v1 or v2, read from the mount table; each driver writes its own files.
        let layout = try CgroupLayout.host()
        let cgroup = try Cgroups.open(name: "lesson07-\(getpid())", limits: limits, layout: layout, kernel: kernel)
        try cgroup.create()

        let status: ExitStatus
        do {
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child that waits until it is in its cgroup") {
                side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06
                try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
            }
            try child.start {
                try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
                // Into the cgroup while it still waits: nothing it runs escapes the limits.
                try cgroup.add(child.pid)
            }
            status = try child.wait()
        } catch {
            try? cgroup.destroy()
            throw error
        }

        // Read the counters before the cgroup goes away with them.
        let counters = cgroup.stats()
        try cgroup.destroy()
        if let oomKills = counters.oomKills, oomKills > 0, let bytes = limits.memoryBytes {
            say("the command was killed for exceeding its memory limit of \(humanBytes(bytes)) (out-of-memory kills: \(oomKills))")
        }
        if stats { counters.summary.forEach { say($0) } }
        return status
    }
}
