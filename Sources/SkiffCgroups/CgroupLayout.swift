import SkiffKernel

/// Where the host mounted its cgroup filesystems, read from /proc/self/mountinfo.
///
/// Three shapes exist (cgroups(7)): *legacy*, only v1 hierarchies, one per controller or group of
/// controllers (/sys/fs/cgroup/memory, /sys/fs/cgroup/cpu,cpuacct); *hybrid*, the same plus an
/// empty cgroup2 hierarchy at /sys/fs/cgroup/unified that systemd uses for tracking; and *unified*,
/// one cgroup2 hierarchy at /sys/fs/cgroup holding every controller, the default on current
/// distributions. A controller can be bound to v1 or to v2, never both.
public struct CgroupLayout: Equatable, Sendable, CustomStringConvertible {
    public enum Mode: String, Sendable { case legacy, hybrid, unified }

    public let mode: Mode
    /// v1 controller name -> the mount point of its hierarchy.
    public let v1Controllers: [String: String]
    /// The cgroup2 mount point, if there is one.
    public let v2MountPoint: String?
    /// v1 controller -> this process's own cgroup in that hierarchy, from /proc/self/cgroup
    /// (`/` at the top). Containers are made below it: if whoever started us (systemd, a CI
    /// sandbox, another container) accounts or limits us in a cgroup, they stay inside it.
    public var ownV1Paths: [String: String] = [:]

    /// The controllers a v1 mount can carry, as they appear in its super options.
    static let knownV1Controllers: Set<String> = [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio", "pids",
        "perf_event", "hugetlb", "rdma", "misc",
    ]

    /// Reads the layout from mountinfo text (proc(5)); fails when no cgroup filesystem is mounted.
    public init(mountInfo: String) throws(SkiffError) {
        var v1: [String: String] = [:]
        var v2: String?
        for line in mountInfo.split(separator: "\n") {
            // Fields: id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let before = halves[0].split(separator: " ")
            let after = halves[1].split(separator: " ")
            guard before.count >= 5, after.count >= 3 else { continue }
            let mountPoint = unescapeMountField(before[4])
            switch after[0] {
            case "cgroup2":
                v2 = v2 ?? mountPoint
            case "cgroup":
                for option in after[2].split(separator: ",") where Self.knownV1Controllers.contains(String(option)) {
                    v1[String(option)] = v1[String(option)] ?? mountPoint
                }
            default:
                continue
            }
        }
        switch (v1.isEmpty, v2) {
        case (false, .some): mode = .hybrid
        case (false, nil): mode = .legacy
        case (true, .some): mode = .unified
        case (true, nil):
            throw SkiffError(.setupFailed, "no cgroup filesystem is mounted: mount cgroup2 on /sys/fs/cgroup (or the v1 hierarchies) first")
        }
        v1Controllers = v1
        v2MountPoint = v2
    }

    /// The host's layout, and where this process sits in it.
    public static func host(proc: ProcFS = ProcFS()) throws(SkiffError) -> CgroupLayout {
        let mountInfo: String
        let membership: String
        do {
            mountInfo = try proc.mountInfo()
            membership = try Files.readText("\(proc.root)/self/cgroup")
        } catch {
            throw SkiffError(.setupFailed, "cannot read this process's cgroups", cause: error)
        }
        var layout = try CgroupLayout(mountInfo: mountInfo)
        layout.ownV1Paths = parseMembership(membership)
        return layout
    }

    /// /proc/PID/cgroup lines `4:memory:/path` (v1) and `0::/path` (v2) -> v1 controller -> path.
    static func parseMembership(_ text: String) -> [String: String] {
        var paths: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            for controller in fields[1].split(separator: ",") where knownV1Controllers.contains(String(controller)) {
                paths[String(controller)] = String(fields[2])
            }
        }
        return paths
    }

    public var description: String {
        switch mode {
        case .legacy: "cgroup v1 (legacy): one hierarchy per controller, e.g. \(v1Controllers["memory"] ?? "?")"
        case .hybrid: "cgroup v1 (hybrid): controllers in v1 hierarchies, an empty cgroup2 at \(v2MountPoint ?? "?")"
        case .unified: "cgroup v2 (unified): every controller in one hierarchy at \(v2MountPoint ?? "?")"
        }
    }
}
