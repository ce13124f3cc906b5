@preconcurrency import Glibc
import SkiffKernel

/// cgroup v1: one hierarchy per controller, so the container gets one directory in each.
/// Files: Documentation/admin-guide/cgroup-v1/ (memory.rst, cpuacct.rst, pids.rst, cpusets.rst)
/// and scheduler/sched-bwc.rst for the CFS quota.
struct CgroupV1: Cgroup {
    let layout: CgroupLayout
    let name: String
    let limits: ResourceLimits
    let kernel: Kernel
    /// Controller -> the container's directory in that controller's hierarchy.
    let directories: [String: String]

    init(name: String, limits: ResourceLimits, layout: CgroupLayout, kernel: Kernel) throws(SkiffError) {
        // memory, cpu, cpuacct and pids always: their counters are the stats, and pids.max is the
        // guard against fork bombs. cpuset and blkio only when asked: a cpuset cgroup must be
        // filled in before it can take a process.
        var wanted = ["memory", "cpu", "cpuacct", "pids"]
        // The freezer, where the host has it, for pause and resume.
        if layout.v1Controllers["freezer"] != nil { wanted.append("freezer") }
        if limits.cpuset != nil { wanted.append("cpuset") }
        if limits.blkioWeight != nil { wanted.append("blkio") }
        if limits.deviceRules != nil { wanted.append("devices") }
        var directories: [String: String] = [:]
        for controller in wanted {
            guard let mountPoint = layout.v1Controllers[controller] else {
                throw SkiffError(.setupFailed, "the \(controller) cgroup controller is not mounted on this host (see /proc/self/mountinfo)")
            }
            let own = layout.ownV1Paths[controller].map { $0 == "/" ? "" : $0 } ?? ""
            directories[controller] = name.hasPrefix("/") ? mountPoint + name : "\(mountPoint)\(own)/\(Cgroups.parent)/\(name)"
        }
        self.layout = layout
        self.name = name
        self.limits = limits
        self.kernel = kernel
        self.directories = directories
    }

    /// Each directory once: cpu and cpuacct often share one hierarchy (`cpu,cpuacct`).
    var paths: [String] { Array(Set(directories.values)).sorted() }

    func directory(_ controller: String) -> String { directories[controller]! }

    var hierarchies: [CgroupHierarchy] {
        var byMountPoint: [String: String] = [:]
        for (controller, directory) in directories {
            if let mountPoint = layout.v1Controllers[controller] { byMountPoint[mountPoint] = directory }
        }
        return byMountPoint.sorted { $0.key < $1.key }.map { mountPoint, directory in
            let name = String(mountPoint.split(separator: "/").last ?? "")
            let parts = name.split(separator: ",").map(String.init)
            return CgroupHierarchy(name: name, aliases: parts.count > 1 ? parts : [], directory: directory)
        }
    }

    /// A cgroup at a path of the caller's (an OCI cgroupsPath), not one of Skiff's own names.
    var isAbsolute: Bool { name.hasPrefix("/") }

    /// mkdir -p of `path`'s missing ancestors, below the hierarchy's mount point.
    private func makeAncestors(of path: String) throws(SkiffError) {
        guard let mountPoint = layout.v1Controllers.values.first(where: { path.hasPrefix($0 + "/") }) else { return }
        var current = mountPoint
        for component in path.dropFirst(mountPoint.count).split(separator: "/").dropLast() {
            current += "/\(component)"
            try makeDirectory(current, why: "a parent of the container's cgroup", kernel: kernel)
        }
    }

    func create() throws(SkiffError) {
        do {
            for directory in paths {
                let parent = parentDirectory(of: directory)
                if directory == directories["cpuset"] {
                    try makeDirectory(parent, why: "Skiff's cgroup in this hierarchy", kernel: kernel)
                    try inheritCPUSet(into: parent)
                }
                if isAbsolute { try makeAncestors(of: parent) }
                try makeDirectory(directory, under: parent, sweep: !isAbsolute, kernel: kernel)
            }
            try writeLimits()
        } catch {
            try? destroy()
            throw error
        }
    }

    func writeLimits() throws(SkiffError) {
        if let bytes = limits.memoryBytes {
            let memory = directory("memory")
            try write("\(bytes)", to: memory + "/memory.limit_in_bytes", why: "cap memory at \(humanBytes(bytes))", kernel: kernel)
            // memsw is memory + swap; equal to the memory limit means no swap at all. It exists
            // only when the kernel accounts swap (swapaccount=1).
            if Files.exists(memory + "/memory.memsw.limit_in_bytes") {
                try write(
                    "\(bytes)", to: memory + "/memory.memsw.limit_in_bytes", why: "and memory plus swap to the same: no swap",
                    kernel: kernel)
            }
        }
        if let quota = limits.cpuQuotaMicroseconds {
            let cpu = directory("cpu")
            try write(
                "\(ResourceLimits.cpuPeriodMicroseconds)", to: cpu + "/cpu.cfs_period_us", why: "CPU time is counted per 100 ms period",
                kernel: kernel)
            try write(
                "\(quota)", to: cpu + "/cpu.cfs_quota_us", why: "at most \(quota) µs of CPU per period, \(limits.cpus!) CPUs",
                kernel: kernel)
        }
        if let shares = limits.cpuShares {
            try write(
                "\(shares)", to: directory("cpu") + "/cpu.shares", why: "the weight under contention (1024 is the default)", kernel: kernel)
        }
        if let cpuset = limits.cpuset {
            let directory = directory("cpuset")
            try write(cpuset, to: directory + "/cpuset.cpus", why: "run only on CPUs \(cpuset)", kernel: kernel)
            let mems = ((try? Files.readText(parentDirectory(of: directory) + "/cpuset.mems")) ?? "").trimmed
            try write(
                mems, to: directory + "/cpuset.mems", why: "and on the memory nodes of the parent: a cpuset needs both", kernel: kernel)
        }
        if let pids = limits.pids {
            try write("\(pids)", to: directory("pids") + "/pids.max", why: "at most \(pids) processes: fork fails beyond", kernel: kernel)
        }
        if let rules = limits.deviceRules {
            let devices = directory("devices")
            try write("a", to: devices + "/devices.deny", why: "no device at all, to begin with", kernel: kernel)
            for rule in rules {
                try write(rule, to: devices + "/devices.allow", why: "then allow \(rule)", kernel: kernel)
            }
        }
        if let weight = limits.blkioWeight {
            let blkio = directory("blkio")
            // CFQ named it blkio.weight; BFQ, the scheduler that still has weights, blkio.bfq.weight.
            guard let file = ["blkio.weight", "blkio.bfq.weight"].first(where: { Files.exists("\(blkio)/\($0)") }) else {
                throw SkiffError(
                    .setupFailed,
                    "--blkio-weight needs an I/O scheduler with weights (BFQ): \(blkio) has no blkio.weight or blkio.bfq.weight")
            }
            try write("\(weight)", to: "\(blkio)/\(file)", why: "the block I/O weight", kernel: kernel)
        }
    }

    /// A new cpuset cgroup starts with no CPUs and no memory nodes, and takes no process until
    /// both are set (cpusets.rst): copy them from our own cgroup into Skiff's parent.
    private func inheritCPUSet(into parent: String) throws(SkiffError) {
        let own = parentDirectory(of: parent)
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = ((try? Files.readText("\(parent)/\(file)")) ?? "").trimmed
            if current.isEmpty {
                let inherited = ((try? Files.readText("\(own)/\(file)")) ?? "").trimmed
                try write(inherited, to: "\(parent)/\(file)", why: "a cpuset cgroup needs its parent's \(file) first", kernel: kernel)
            }
        }
    }

    func add(_ pid: pid_t) throws(SkiffError) {
        for directory in paths {
            try write(
                "\(pid)", to: directory + "/cgroup.procs", why: "put the container's first process in; its children follow", kernel: kernel)
        }
    }

    func stats() -> CgroupStats {
        var stats = CgroupStats()
        let memory = directory("memory")
        stats.memoryUsageBytes = readNumber(memory + "/memory.usage_in_bytes")
        stats.memoryPeakBytes = readNumber(memory + "/memory.max_usage_in_bytes")
        stats.memoryLimitBytes = limits.memoryBytes
        // oom_kill appeared in memory.oom_control in Linux 4.13.
        stats.oomKills = readKeyedNumbers(memory + "/memory.oom_control")["oom_kill"]
        stats.cpuUsageNanoseconds = readNumber(directory("cpuacct") + "/cpuacct.usage")
        let cpu = readKeyedNumbers(directory("cpu") + "/cpu.stat")
        stats.throttledPeriods = cpu["nr_throttled"]
        stats.throttledNanoseconds = cpu["throttled_time"]
        stats.pidsCurrent = readNumber(directory("pids") + "/pids.current")
        stats.pidsLimit = limits.pids
        return stats
    }

    func destroy() throws(SkiffError) {
        var firstError: SkiffError?
        for directory in paths {
            do {
                try removeDirectory(directory, parent: parentDirectory(of: directory), keepParent: isAbsolute, kernel: kernel)
            } catch {
                firstError = firstError ?? error
            }
        }
        if let firstError { throw firstError }
    }
}

func parentDirectory(of path: String) -> String {
    String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
}
