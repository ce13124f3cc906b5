import ArgumentParser
import SkiffCgroups
import SkiffKernel

/// The cgroup limits of lesson 07 onwards, as options; checked before anything is created.
public struct LimitOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Memory limit, e.g. 64m (units b, k, m, g); no swap on top.")
    public var memory: String?

    @Option(parsing: .unconditional, help: "CPU time as a number of CPUs, e.g. 0.5.")
    public var cpus: String?

    @Option(parsing: .unconditional, help: "Relative CPU weight under contention (2-262144, default 1024).")
    public var cpuShares: String?

    @Option(parsing: .unconditional, help: "CPUs the command may run on, e.g. 0 or 0-1.")
    public var cpuset: String?

    @Option(parsing: .unconditional, help: "The most processes the command may have at once.")
    public var pids: String?

    @Option(parsing: .unconditional, help: "Relative block I/O weight (10-1000), where the I/O scheduler has weights.")
    public var blkioWeight: String?

    @Flag(help: "Print the cgroup's counters after the command ends.")
    public var stats = false

    public init() {}

    /// The limits, each checked: a bad value is an error that names the option.
    public func limits() throws -> ResourceLimits {
        var limits = ResourceLimits()
        limits.memoryBytes = try memory.map(ResourceLimits.parseMemory)
        limits.cpus = try cpus.map { try ResourceLimits.parseCPUs($0) }
        limits.cpuShares = try cpuShares.map(ResourceLimits.parseCPUShares)
        limits.cpuset = try cpuset.map { try ResourceLimits.parseCPUSet($0) }
        limits.pids = try pids.map(ResourceLimits.parsePids)
        limits.blkioWeight = try blkioWeight.map(ResourceLimits.parseBlkioWeight)
        return limits
    }

    /// What to tell the user after the command: an OOM kill always, the counters with --stats.
    public func report(_ counters: CgroupStats, limits: ResourceLimits) -> [String] {
        var lines: [String] = []
        if let oomKills = counters.oomKills, oomKills > 0, let bytes = limits.memoryBytes {
            lines.append("the command was killed for exceeding its memory limit of \(humanBytes(bytes)) (out-of-memory kills: \(oomKills))")
        }
        if stats { lines += counters.summary }
        return lines
    }
}
