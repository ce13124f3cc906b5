import Foundation
import SkiffCgroups
import SkiffKernel

/// What a container is, as the runtime records it: the OCI state (runtime-spec runtime.md) and
/// what `delete` needs to clean up.
public struct ContainerState: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case creating, created, running, paused, stopped }

    public var ociVersion = "1.2.0"
    public var id: String
    public var status: Status
    public var pid: Int32
    public var bundle: String
    public var annotations: [String: String]?
    /// RFC 3339, as runc prints it.
    public var created: String
    /// The init's start time (field 22 of /proc/PID/stat): a recycled pid is not our process.
    public var processStartTime: UInt64?
    public var cgroupPath: String?
    public var rootfs: String?

    /// The public state: what `skiff-runtime state` prints.
    /// The container's cgroup directories, one per hierarchy.
    public var cgroupPaths: [String] { cgroupPath?.split(separator: ":").map(String.init) ?? [] }

    public var ociJSON: String {
        var fields: [String: Any] = ["ociVersion": ociVersion, "id": id, "status": status.rawValue, "pid": Int(pid), "bundle": bundle]
        if let annotations, !annotations.isEmpty { fields["annotations"] = annotations }
        fields["created"] = created
        let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// The runtime's state directory (`--root`, default /run/skiff-runtime): one directory per
/// container holding state.json, written atomically (temporary file, fsync, rename), and the
/// exec FIFO that holds a created container until `start`.
public struct StateStore: Sendable {
    public let root: String

    public static let defaultRoot = "/run/skiff-runtime"

    public init(root: String = defaultRoot) { self.root = root }

    public func directory(_ id: String) -> String { "\(root)/\(id)" }
    public func execFIFO(_ id: String) -> String { directory(id) + "/exec.fifo" }

    public func save(_ state: ContainerState) throws(SkiffError) {
        let file = directory(state.id) + "/state.json"
        do {
            try Files.writeAtomically(file, Array(try JSONEncoder().encode(state)))
        } catch {
            throw SkiffError(.setupFailed, "cannot save the state of \(state.id)", cause: error)
        }
    }

    /// The recorded state with its status brought up to date: a dead init is `stopped`; a live one
    /// still waiting at its FIFO is `created`.
    public func load(_ id: String) throws(SkiffError) -> ContainerState {
        let file = directory(id) + "/state.json"
        guard let data = FileManager.default.contents(atPath: file), var state = try? JSONDecoder().decode(ContainerState.self, from: data)
        else {
            throw SkiffError(.invalidInput, "container \(id) does not exist (no state in \(directory(id)))")
        }
        state.status = currentStatus(of: state)
        return state
    }

    public func list() -> [ContainerState] {
        ((try? Files.names(in: root)) ?? []).compactMap { try? load($0) }
    }

    public func remove(_ id: String) {
        try? FileManager.default.removeItem(atPath: directory(id))
    }

    func currentStatus(of state: ContainerState) -> ContainerState.Status {
        guard state.pid > 0 else { return state.status }
        guard ProcFS().isRunning(state.pid), Self.startTime(of: state.pid) == state.processStartTime else { return .stopped }
        if Files.exists(execFIFO(state.id)) { return .created }
        return Cgroups.isFrozen(paths: state.cgroupPaths) ? .paused : .running
    }

    /// Field 22 of /proc/PID/stat, after the command name in parentheses.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? Files.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Now, in RFC 3339 with fractional seconds, UTC: how the runtime and the engine write times.
    public static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
