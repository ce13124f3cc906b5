import Foundation
import Testing

@testable import SkiffCgroups
@testable import SkiffKernel

@Suite("pure: cgroup layouts and limits")
struct Lesson07CgroupPureTests {
    static let hybrid = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        28 27 0:25 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        29 28 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        30 28 0:27 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        31 28 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        32 28 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
        33 28 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        34 28 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """

    @Test("a hybrid host: v1 controllers plus an empty cgroup2")
    func hybridLayout() throws {
        let layout = try CgroupLayout(mountInfo: Self.hybrid)
        #expect(layout.mode == .hybrid)
        #expect(
            layout.v1Controllers == [
                "cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "memory": "/sys/fs/cgroup/memory",
                "pids": "/sys/fs/cgroup/pids",
            ])
        #expect(layout.v2MountPoint == "/sys/fs/cgroup/unified")
    }

    @Test("a legacy host with cpu and cpuacct in one hierarchy, and a unified host")
    func legacyAndUnified() throws {
        let legacy = try CgroupLayout(mountInfo: "40 28 0:40 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
        #expect(legacy.mode == .legacy)
        #expect(legacy.v1Controllers == ["cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"])
        let unified = try CgroupLayout(
            mountInfo: "26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
        #expect(unified.mode == .unified)
        #expect(unified.v2MountPoint == "/sys/fs/cgroup")
        #expect(throws: SkiffError.self) { try CgroupLayout(mountInfo: "22 27 0:21 / /proc rw - proc proc rw\n") }
    }

    @Test("the host's layout is read from /proc")
    func hostLayout() throws {
        let layout = try CgroupLayout.host()
        #expect(layout.mode == .unified ? layout.v2MountPoint != nil : !layout.v1Controllers.isEmpty)
    }

    @Test("memory sizes take units b, k, m, g and refuse junk and tiny limits")
    func memorySizes() throws {
        #expect(try ResourceLimits.parseMemory("64m") == 64 << 20)
        #expect(try ResourceLimits.parseMemory("64M") == 64 << 20)
        #expect(try ResourceLimits.parseMemory("1g") == 1 << 30)
        #expect(try ResourceLimits.parseMemory("8192k") == 8 << 20)
        #expect(try ResourceLimits.parseMemory("10485760") == 10 << 20)
        for bad in ["12q", "", "m", "-5m", "0", "1k", "99999999999999999999g"] {
            #expect(throws: SkiffError.self, "\(bad)") { try ResourceLimits.parseMemory(bad) }
        }
    }

    @Test("cpus, shares, cpusets, pids and weights are range-checked")
    func ranges() throws {
        #expect(try ResourceLimits.parseCPUs("0.5", onlineCPUs: 2) == 0.5)
        #expect(throws: SkiffError.self) { try ResourceLimits.parseCPUs("-1", onlineCPUs: 2) }
        #expect(throws: SkiffError.self) { try ResourceLimits.parseCPUs("3", onlineCPUs: 2) }
        #expect(throws: SkiffError.self) { try ResourceLimits.parseCPUs("nan", onlineCPUs: 2) }
        #expect(try ResourceLimits.parseCPUSet("0-1", onlineCPUs: 2) == "0-1")
        #expect(try ResourceLimits.parseCPUSet("0,1", onlineCPUs: 2) == "0,1")
        for bad in ["1-0", "2", "a", "0-", ""] {
            #expect(throws: SkiffError.self, "\(bad)") { try ResourceLimits.parseCPUSet(bad, onlineCPUs: 2) }
        }
        #expect(throws: SkiffError.self) { try ResourceLimits.parsePids("0") }
        #expect(try ResourceLimits.parsePids("20") == 20)
        #expect(throws: SkiffError.self) { try ResourceLimits.parseCPUShares("1") }
        #expect(throws: SkiffError.self) { try ResourceLimits.parseBlkioWeight("5") }
        var limits = ResourceLimits()
        limits.cpus = 0.5
        #expect(limits.cpuQuotaMicroseconds == 50_000)
    }

    @Test("cpu.shares converts to cpu.weight end to end")
    func sharesToWeight() {
        #expect(ResourceLimits.cpuWeight(fromShares: 2) == 1)
        #expect(ResourceLimits.cpuWeight(fromShares: 262_144) == 10_000)
        #expect(ResourceLimits.cpuWeight(fromShares: 1024) == 100, "the defaults meet")
        #expect(ResourceLimits.cpuWeight(fromShares: 512) < 100 && ResourceLimits.cpuWeight(fromShares: 2048) > 100)
    }

    @Test("stats read as sentences")
    func statsSummary() {
        var stats = CgroupStats()
        stats.memoryUsageBytes = 1 << 20
        stats.memoryPeakBytes = 3 << 20
        stats.memoryLimitBytes = 64 << 20
        stats.oomKills = 1
        stats.cpuUsageNanoseconds = 1_250_000_000
        stats.throttledPeriods = 7
        stats.throttledNanoseconds = 50_000_000
        stats.pidsCurrent = 0
        #expect(
            stats.summary == [
                "memory: usage 1 MiB, peak 3 MiB, limit 64 MiB, OOM kills 1",
                "cpu: usage 1.250 s, throttled 7 periods for 0.050 s",
                "pids: current 0, limit none",
            ])
    }
}

/// The v2 driver against a directory shaped like a cgroup2 tree: these machines run v1, real
/// users mostly v2.
@Suite("fixtures: the cgroup v2 driver on a cgroup2-shaped tree")
struct Lesson07CgroupV2FixtureTests {
    let root: String
    let layout: CgroupLayout

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-cgroup2-\(UUID().uuidString)").path
        layout = try CgroupLayout(mountInfo: "26 21 0:23 / \(root) rw - cgroup2 cgroup2 rw\n")
        // What the kernel shows: the root's controllers, and in every cgroup the interface files.
        try makeFiles(root, ["cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n", "cgroup.subtree_control": ""])
        try makeFiles(root + "/skiff", ["cgroup.subtree_control": "", "cgroup.procs": ""])
        try makeFiles(
            root + "/skiff/c1",
            [
                "memory.max": "", "memory.swap.max": "", "cpu.max": "", "cpu.weight": "", "cpuset.cpus": "", "pids.max": "",
                "cgroup.procs": "", "memory.current": "1234\n", "memory.peak": "5678\n",
                "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
                "cpu.stat":
                    "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 300000\n",
                "pids.current": "3\n",
            ])
    }

    func makeFiles(_ directory: String, _ files: [String: String]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, contents) in files {
            try contents.write(toFile: "\(directory)/\(name)", atomically: false, encoding: .utf8)
        }
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: "\(root)/\(path)", encoding: .utf8) }

    func limits() -> ResourceLimits {
        var limits = ResourceLimits()
        limits.memoryBytes = 64 << 20
        limits.cpus = 0.5
        limits.cpuShares = 1024
        limits.cpuset = "0"
        limits.pids = 20
        return limits
    }

    @Test("create enables the controllers top-down and writes the exact files and values")
    func createWritesLimits() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let cgroup = try Cgroups.open(name: "c1", limits: limits(), layout: layout, kernel: Kernel())
        #expect(cgroup is CgroupV2)
        try cgroup.create()
        #expect(try read("cgroup.subtree_control") == "+cpu +memory +pids +cpuset")
        #expect(try read("skiff/cgroup.subtree_control") == "+cpu +memory +pids +cpuset")
        #expect(try read("skiff/c1/memory.max") == "67108864")
        #expect(try read("skiff/c1/memory.swap.max") == "0")
        #expect(try read("skiff/c1/cpu.max") == "50000 100000")
        #expect(try read("skiff/c1/cpu.weight") == "100")
        #expect(try read("skiff/c1/cpuset.cpus") == "0")
        #expect(try read("skiff/c1/pids.max") == "20")
        try cgroup.add(4242)
        #expect(try read("skiff/c1/cgroup.procs") == "4242")
    }

    @Test("stats come from memory.current, memory.peak, memory.events, cpu.stat and pids.current")
    func stats() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let stats = try Cgroups.open(name: "c1", limits: limits(), layout: layout, kernel: Kernel()).stats()
        #expect(stats.memoryUsageBytes == 1234)
        #expect(stats.memoryPeakBytes == 5678)
        #expect(stats.oomKills == 1)
        #expect(stats.cpuUsageNanoseconds == 2_500_000_000)
        #expect(stats.throttledPeriods == 4)
        #expect(stats.throttledNanoseconds == 300_000_000)
        #expect(stats.pidsCurrent == 3)
    }

    @Test("destroy removes the empty cgroup, then the parent if it is unused")
    func destroy() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        let recorder = RecordingSyscalls()
        try Cgroups.open(name: "c1", limits: limits(), layout: layout, kernel: Kernel(syscalls: recorder)).destroy()
        #expect(recorder.calls == [.rmdir("\(root)/skiff/c1"), .rmdir("\(root)/skiff")])
    }

    @Test("a controller the host does not offer is named in the error, and nothing is created")
    func missingController() throws {
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "cpu memory\n".write(toFile: root + "/cgroup.controllers", atomically: false, encoding: .utf8)
        let recorder = RecordingSyscalls()
        #expect {
            try Cgroups.open(name: "c1", limits: limits(), layout: layout, kernel: Kernel(syscalls: recorder)).create()
        } throws: { error in
            "\(error)".contains("the cgroup v2 controller pids is not available")
        }
        #expect(recorder.calls.isEmpty)
    }

    @Test("a cgroup name that could climb out of Skiff's directory is refused")
    func badName() {
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["..", "a/b", "", "x y"] {
            #expect(throws: SkiffError.self, "\(name)") {
                try Cgroups.open(name: name, limits: ResourceLimits(), layout: layout, kernel: Kernel())
            }
        }
    }
}

extension Lesson07CgroupPureTests {
    @Test("v1 cgroups are made below this process's own cgroup in each hierarchy")
    func ownCgroupNesting() throws {
        #expect(
            CgroupLayout.parseMembership("9:name=systemd:/\n4:memory:/sandbox/42\n1:cpu,cpuacct:/\n0::/\n")
                == ["memory": "/sandbox/42", "cpu": "/", "cpuacct": "/"])
        var layout = try CgroupLayout(mountInfo: Self.hybrid)
        layout.ownV1Paths = ["memory": "/sandbox/42", "cpu": "/", "cpuacct": "/", "pids": "/"]
        let cgroup = try Cgroups.open(name: "c1", limits: ResourceLimits(), layout: layout, kernel: Kernel())
        #expect(
            cgroup.paths == [
                "/sys/fs/cgroup/cpu/skiff/c1", "/sys/fs/cgroup/cpuacct/skiff/c1", "/sys/fs/cgroup/memory/sandbox/42/skiff/c1",
                "/sys/fs/cgroup/pids/skiff/c1",
            ])
    }
}
