@preconcurrency import Glibc
import SkiffKernel

/// A container's cgroup: one protocol, a driver for each cgroup version.
///
/// The lifecycle: `create` makes the directories and writes the limits before the container runs
/// anything; `add` moves its first process in while that process waits on the setup pipe, so
/// every process it later forks is born inside; `stats` reads the counters; `destroy` kills
/// what is left, waits for the cgroup to empty and removes it.
public protocol Cgroup {
    /// What the host runs, for `--explain`.
    var layout: CgroupLayout { get }
    /// The container's cgroup directories: one per v1 hierarchy, one in v2.
    var paths: [String] { get }
    /// The container's directory in each hierarchy, named as the host names the hierarchy, for
    /// the container's own /sys/fs/cgroup.
    var hierarchies: [CgroupHierarchy] { get }
    func create() throws(SkiffError)
    func add(_ pid: pid_t) throws(SkiffError)
    func stats() -> CgroupStats
    func destroy() throws(SkiffError)
    /// Writes the limits again into an existing cgroup (`update`): only those that are set.
    func writeLimits() throws(SkiffError)
}

/// One hierarchy as a container sees it: `name` is the hierarchy's directory under
/// /sys/fs/cgroup (`memory`, `cpu,cpuacct`; empty for v2's single hierarchy, which is the whole
/// of /sys/fs/cgroup), `aliases` the controllers that reach it through a symlink (`cpu` and
/// `cpuacct` for `cpu,cpuacct`), `directory` the container's cgroup on the host.
public struct CgroupHierarchy: Equatable, Sendable {
    public let name: String
    public let aliases: [String]
    public let directory: String
}

/// Counters of a cgroup; nil where the host's kernel does not provide one.
public struct CgroupStats: Equatable, Sendable {
    public var memoryUsageBytes: UInt64?
    public var memoryPeakBytes: UInt64?
    public var memoryLimitBytes: UInt64?
    public var oomKills: UInt64?
    public var cpuUsageNanoseconds: UInt64?
    public var throttledPeriods: UInt64?
    public var throttledNanoseconds: UInt64?
    public var pidsCurrent: UInt64?
    public var pidsLimit: UInt64?

    public init() {}

    /// Three lines for people: memory, CPU, pids.
    public var summary: [String] {
        func bytes(_ value: UInt64?) -> String { value.map(humanBytes) ?? "n/a" }
        func number(_ value: UInt64?) -> String { value.map(String.init) ?? "n/a" }
        let seconds = cpuUsageNanoseconds.map(secondsText) ?? "n/a"
        let throttled = throttledNanoseconds.map(secondsText) ?? "n/a"
        return [
            "memory: usage \(bytes(memoryUsageBytes)), peak \(bytes(memoryPeakBytes)), limit \(memoryLimitBytes.map(humanBytes) ?? "none"), OOM kills \(number(oomKills))",
            "cpu: usage \(seconds), throttled \(number(throttledPeriods)) periods for \(throttled)",
            "pids: current \(number(pidsCurrent)), limit \(pidsLimit.map(String.init) ?? "none")",
        ]
    }
}

public enum Cgroups {
    /// Opens the cgroup `name` for `limits` with the driver the host's layout calls for: v2 when
    /// the controllers live in the unified hierarchy, v1 otherwise (hybrid hosts keep them in v1).
    public static func open(
        name: String, limits: ResourceLimits, layout: CgroupLayout, kernel: Kernel
    ) throws(SkiffError) -> any Cgroup {
        guard isValidName(name) else {
            throw SkiffError(.invalidInput, "invalid cgroup name \"\(name)\": use letters, digits, '-', '_' and '.'")
        }
        kernel.narrator.note(layout.description)
        if layout.mode == .unified, let root = layout.v2MountPoint {
            return CgroupV2(root: root, name: name, limits: limits, layout: layout, kernel: kernel)
        }
        return try CgroupV1(name: name, limits: limits, layout: layout, kernel: kernel)
    }

    /// Opens the cgroup at `path` within each hierarchy, as an OCI spec's `linux.cgroupsPath`
    /// gives it (`/docker/ID`): made with its missing parents, and only it is removed at the end.
    public static func open(path: String, limits: ResourceLimits, layout: CgroupLayout, kernel: Kernel) throws(SkiffError) -> any Cgroup {
        let components = path.split(separator: "/").map(String.init)
        guard path.hasPrefix("/"), !components.isEmpty, components.allSatisfy(isValidName) else {
            throw SkiffError(
                .invalidInput, "invalid cgroup path \"\(path)\": an absolute path of names made of letters, digits, '-', '_' and '.'")
        }
        kernel.narrator.note(layout.description)
        if layout.mode == .unified, let root = layout.v2MountPoint {
            return CgroupV2(root: root, name: path, limits: limits, layout: layout, kernel: kernel)
        }
        return try CgroupV1(name: path, limits: limits, layout: layout, kernel: kernel)
    }

    /// Removes cgroup directories recorded earlier (a runtime's `delete` runs in another process
    /// than its `create`): kills what is left in each, waits for it to empty, removes it.
    public static func remove(_ paths: [String], kernel: Kernel) throws(SkiffError) {
        for path in paths {
            try Remover(kernel: kernel).removeDirectory(path, parent: parentDirectory(of: path), keepParent: true, kernel: kernel)
        }
    }

    /// Freezes or thaws every process of the cgroup at `paths` (`docker pause`): v1's
    /// freezer.state, or v2's cgroup.freeze; waits, bounded, until the kernel says it is done.
    public static func setFrozen(_ frozen: Bool, paths: [String], kernel: Kernel) throws(SkiffError) {
        for path in paths {
            let (file, value, done): (String, String, () -> Bool)
            if Files.exists(path + "/freezer.state") {
                (file, value) = (path + "/freezer.state", frozen ? "FROZEN" : "THAWED")
                done = { ((try? Files.readText(path + "/freezer.state")) ?? "").trimmed == value }
            } else if Files.exists(path + "/cgroup.freeze") {
                (file, value) = (path + "/cgroup.freeze", frozen ? "1" : "0")
                done = { readKeyedNumbers(path + "/cgroup.events")["frozen"] == (frozen ? 1 : 0) }
            } else {
                continue
            }
            do {
                try kernel.run(
                    .writeFile(file, contents: value),
                    why: frozen ? "stop every process of the container where it is" : "let them run again")
            } catch {
                throw SkiffError(.setupFailed, "cannot \(frozen ? "freeze" : "thaw") \(path)", cause: error)
            }
            for _ in 0..<500 where !done() { usleep(10_000) }
            guard done() else { throw SkiffError(.setupFailed, "\(path) did not \(frozen ? "freeze" : "thaw") within 5 s") }
            return
        }
        throw SkiffError(.setupFailed, "the container's cgroups have no freezer (\(paths.joined(separator: ", ")))")
    }

    /// Whether the cgroup at `paths` is frozen.
    public static func isFrozen(paths: [String]) -> Bool {
        for path in paths {
            if let state = try? Files.readText(path + "/freezer.state") { return state.trimmed == "FROZEN" }
            if Files.exists(path + "/cgroup.freeze") { return readKeyedNumbers(path + "/cgroup.events")["frozen"] == 1 }
        }
        return false
    }

    /// Just enough of a cgroup to use the shared removal code on recorded paths.
    private struct Remover: Cgroup {
        let kernel: Kernel
        var layout: CgroupLayout { fatalError("not used") }
        var paths: [String] { [] }
        var hierarchies: [CgroupHierarchy] { [] }
        func create() throws(SkiffError) {}
        func add(_ pid: pid_t) throws(SkiffError) {}
        func stats() -> CgroupStats { CgroupStats() }
        func destroy() throws(SkiffError) {}
        func writeLimits() throws(SkiffError) {}
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 200
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    /// Every cgroup Skiff makes lives under this directory of each hierarchy, as Docker's live
    /// under /docker.
    static let parent = "skiff"
}

extension Cgroup {
    /// The whole lifecycle around `body`, which starts the container and must `add` its first
    /// process: create, run, read the counters, destroy. The cgroup is destroyed also when `body`
    /// throws, so a failed start leaves nothing behind.
    public func around(_ body: () throws -> ExitStatus) throws -> (status: ExitStatus, counters: CgroupStats) {
        try create()
        let status: ExitStatus
        do {
            status = try body()
        } catch {
            try? destroy()
            throw error
        }
        // Read before the cgroup goes away with its counters.
        let counters = stats()
        try destroy()
        return (status, counters)
    }
}

/// The pieces both drivers share.
extension Cgroup {
    /// Writes one control file, narrated.
    func write(_ value: String, to path: String, why: @autoclosure () -> String, kernel: Kernel) throws(SkiffError) {
        do {
            try kernel.run(.writeFile(path, contents: value), why: why())
        } catch {
            throw SkiffError(.setupFailed, "cannot set the cgroup limit \(path) to \(value)", cause: error)
        }
    }

    /// Makes the container's directory under `parent`, and `parent` first. Another container may
    /// remove an empty `parent` between the two (see `removeDirectory`), so a vanished parent is
    /// made again, a bounded number of times. Cgroups that earlier runs left behind are swept on
    /// the way.
    func makeDirectory(_ directory: String, under parent: String, sweep: Bool = true, kernel: Kernel) throws(SkiffError) {
        for attempt in 1...5 {
            try makeDirectory(parent, why: "Skiff's cgroup in this hierarchy", kernel: kernel)
            if attempt == 1 && sweep { sweepStale(in: parent, kernel: kernel) }
            do {
                try kernel.run(.mkdir(directory, mode: 0o755), why: "the container's cgroup: the kernel fills it with control files")
                return
            } catch let error where error.errno == ENOENT && attempt < 5 {
                continue
            } catch {
                throw SkiffError(.setupFailed, "cannot create the cgroup \(directory)", cause: error)
            }
        }
    }

    /// Cgroups are named NAME-PID after the process that owns them. One whose process is gone was
    /// left by a run that was killed before it could clean up (SIGKILL gives no chance): remove it.
    func sweepStale(in parent: String, kernel: Kernel) {
        for name in (try? Files.names(in: parent)) ?? [] {
            guard let dash = name.lastIndex(of: "-"), let owner = pid_t(name[name.index(after: dash)...]), owner > 0 else { continue }
            guard owner != getpid(), !ProcFS().isRunning(owner) else { continue }
            kernel.narrator.note("\(parent)/\(name) belongs to process \(owner), which is gone: removing it")
            try? removeDirectory("\(parent)/\(name)", parent: parent, keepParent: true, kernel: kernel)
        }
    }

    /// Makes a directory that may already be there.
    func makeDirectory(_ path: String, why: @autoclosure () -> String, kernel: Kernel) throws(SkiffError) {
        do {
            try kernel.run(.mkdir(path, mode: 0o755), why: why())
        } catch {
            throw SkiffError(.setupFailed, "cannot create the cgroup \(path)", cause: error)
        }
    }

    /// Kills what is left in `directory`, waits (bounded) until it is empty, and removes it,
    /// retrying while the kernel still reports it busy: the last task leaves a moment after it is
    /// reaped. Then removes the shared parent if no other container uses it.
    func removeDirectory(_ directory: String, parent: String, keepParent: Bool = false, kernel: Kernel) throws(SkiffError) {
        guard Files.exists(directory) else { return }
        for attempt in 0..<500 {
            let remaining = tasks(in: directory)
            if remaining.isEmpty {
                do {
                    try kernel.run(.rmdir(directory), why: "remove the cgroup: its last process is gone")
                    // EBUSY here: another container still has its cgroup under the parent.
                    if !keepParent || parent.hasSuffix("/" + Cgroups.parent) {
                        try? kernel.run(.rmdir(parent), why: "remove Skiff's parent cgroup if no other container uses it")
                    }
                    return
                } catch let error where error.errno == EBUSY {
                    // The last task is still on its way out; try again.
                } catch {
                    throw SkiffError(.setupFailed, "cannot remove the cgroup \(directory)", cause: error)
                }
            } else if attempt % 50 == 0 {
                for pid in remaining {
                    try? kernel.run(.kill(pid: pid, signal: SIGKILL), why: "a process is left in the cgroup: end it")
                }
            }
            usleep(10_000)
        }
        throw SkiffError(.setupFailed, "the cgroup \(directory) did not empty within 5 s: processes \(tasks(in: directory)) remain")
    }

    func tasks(in directory: String) -> [pid_t] {
        ((try? Files.readText(directory + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }
}

/// Reads a number from a control file; nil when it is missing or holds something else (`max`).
func readNumber(_ path: String) -> UInt64? {
    (try? Files.readText(path)).flatMap { UInt64($0.trimmed) }
}

/// Reads `key value` lines (memory.events, cpu.stat, memory.oom_control) into a dictionary.
func readKeyedNumbers(_ path: String) -> [String: UInt64] {
    var result: [String: UInt64] = [:]
    for line in ((try? Files.readText(path)) ?? "").split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count == 2, let value = UInt64(fields[1]) { result[String(fields[0])] = value }
    }
    return result
}

extension StringProtocol {
    /// Without leading and trailing white space (control files end in a newline).
    var trimmed: String { String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
}

/// `1.250 s` for 1_250_000_000 nanoseconds.
func secondsText(_ nanoseconds: UInt64) -> String {
    let milliseconds = nanoseconds / 1_000_000
    let fraction = String(milliseconds % 1000)
    return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) s"
}
