@preconcurrency import Glibc
import SkiffKernel

/// cgroup v2: one hierarchy, the container gets one directory in it.
/// Files: Documentation/admin-guide/cgroup-v2.rst.
struct CgroupV2: Cgroup {
    let root: String
    let name: String
    let limits: ResourceLimits
    let layout: CgroupLayout
    let kernel: Kernel

    init(root: String, name: String, limits: ResourceLimits, layout: CgroupLayout, kernel: Kernel) {
        self.root = root
        self.name = name
        self.limits = limits
        self.layout = layout
        self.kernel = kernel
    }

    /// At the top of the hierarchy, as Docker's cgroupfs driver does: v2 lets only leaves hold
    /// processes, so a cgroup below our own (which holds us) could not enable controllers.
    var parent: String { name.hasPrefix("/") ? parentDirectory(of: root + name) : "\(root)/\(Cgroups.parent)" }
    var directory: String { name.hasPrefix("/") ? root + name : "\(parent)/\(name)" }
    var paths: [String] { [directory] }
    var hierarchies: [CgroupHierarchy] { [CgroupHierarchy(name: "", aliases: [], directory: directory)] }

    /// The controllers this container needs; each must be enabled in every ancestor's
    /// cgroup.subtree_control ("top-down constraint").
    var controllers: [String] {
        var controllers = ["cpu", "memory", "pids"]
        if limits.cpuset != nil { controllers.append("cpuset") }
        if limits.blkioWeight != nil { controllers.append("io") }
        return controllers
    }

    func create() throws(SkiffError) {
        let available = ((try? Files.readText(root + "/cgroup.controllers")) ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        if let missing = controllers.first(where: { !available.contains($0) }) {
            throw SkiffError(
                .setupFailed,
                "the cgroup v2 controller \(missing) is not available: \(root)/cgroup.controllers lists only \"\(available.joined(separator: " "))\""
            )
        }
        let enable = controllers.map { "+" + $0 }.joined(separator: " ")
        do {
            try write(enable, to: root + "/cgroup.subtree_control", why: "let the root's children use these controllers", kernel: kernel)
            // Every ancestor between the root and the container's parent, for a deep cgroupsPath.
            var ancestor = root
            for component in parent.dropFirst(root.count).split(separator: "/").dropLast() {
                ancestor += "/\(component)"
                try makeDirectory(ancestor, why: "a parent of the container's cgroup", kernel: kernel)
                try write(enable, to: ancestor + "/cgroup.subtree_control", why: "controllers for the cgroups below", kernel: kernel)
            }
            try makeDirectory(directory, under: parent, sweep: !name.hasPrefix("/"), kernel: kernel)
            // A cgroup without processes may enable controllers for its children at any time.
            try write(enable, to: parent + "/cgroup.subtree_control", why: "and the containers under it", kernel: kernel)
            try writeLimits()
        } catch {
            try? destroy()
            throw error
        }
    }

    func writeLimits() throws(SkiffError) {
        if limits.deviceRules != nil {
            // v2 has no devices files: access is decided by an eBPF program attached to the
            // cgroup (BPF_CGROUP_DEVICE), which Skiff does not load yet.
            kernel.narrator.note("device rules are not enforced on cgroup v2 yet (they need a BPF_CGROUP_DEVICE program)")
        }
        if let bytes = limits.memoryBytes {
            try write("\(bytes)", to: directory + "/memory.max", why: "cap memory at \(humanBytes(bytes))", kernel: kernel)
            // Without swap accounting there is no memory.swap.max, and no swap to limit.
            if Files.exists(directory + "/memory.swap.max") {
                try write("0", to: directory + "/memory.swap.max", why: "and no swap on top of it", kernel: kernel)
            }
        }
        if let quota = limits.cpuQuotaMicroseconds {
            try write(
                "\(quota) \(ResourceLimits.cpuPeriodMicroseconds)", to: directory + "/cpu.max",
                why: "at most \(quota) µs of CPU per 100 ms period, \(limits.cpus!) CPUs", kernel: kernel)
        }
        if let shares = limits.cpuShares {
            let weight = ResourceLimits.cpuWeight(fromShares: shares)
            try write(
                "\(weight)", to: directory + "/cpu.weight", why: "the weight under contention (shares \(shares) in v2 units)",
                kernel: kernel)
        }
        if let cpuset = limits.cpuset {
            try write(cpuset, to: directory + "/cpuset.cpus", why: "run only on CPUs \(cpuset)", kernel: kernel)
        }
        if let pids = limits.pids {
            try write("\(pids)", to: directory + "/pids.max", why: "at most \(pids) processes: fork fails beyond", kernel: kernel)
        }
        if let weight = limits.blkioWeight {
            guard let file = ["io.weight", "io.bfq.weight"].first(where: { Files.exists("\(directory)/\($0)") }) else {
                throw SkiffError(
                    .setupFailed, "--blkio-weight needs an I/O scheduler with weights: \(directory) has no io.weight or io.bfq.weight")
            }
            // io.weight is 1...10000 around 100; blkio's 10...1000 around 500 maps onto it linearly.
            let value = file == "io.weight" ? "default \(1 + (weight - 10) * 9999 / 990)" : "\(weight)"
            try write(value, to: "\(directory)/\(file)", why: "the block I/O weight", kernel: kernel)
        }
    }

    func add(_ pid: pid_t) throws(SkiffError) {
        try write(
            "\(pid)", to: directory + "/cgroup.procs", why: "put the container's first process in; its children follow", kernel: kernel)
    }

    func stats() -> CgroupStats {
        var stats = CgroupStats()
        stats.memoryUsageBytes = readNumber(directory + "/memory.current")
        // memory.peak appeared in Linux 5.19.
        stats.memoryPeakBytes = readNumber(directory + "/memory.peak")
        stats.memoryLimitBytes = limits.memoryBytes
        stats.oomKills = readKeyedNumbers(directory + "/memory.events")["oom_kill"]
        let cpu = readKeyedNumbers(directory + "/cpu.stat")
        stats.cpuUsageNanoseconds = cpu["usage_usec"].map { $0 * 1000 }
        stats.throttledPeriods = cpu["nr_throttled"]
        stats.throttledNanoseconds = cpu["throttled_usec"].map { $0 * 1000 }
        stats.pidsCurrent = readNumber(directory + "/pids.current")
        stats.pidsLimit = limits.pids
        return stats
    }

    func destroy() throws(SkiffError) {
        // cgroup.kill (Linux 5.14) ends every process inside at once, even ones forking.
        if Files.exists(directory + "/cgroup.kill"), !tasks(in: directory).isEmpty {
            try? kernel.run(.writeFile(directory + "/cgroup.kill", contents: "1"), why: "end every process left in the cgroup")
        }
        try removeDirectory(directory, parent: parent, keepParent: name.hasPrefix("/"), kernel: kernel)
    }
}
