import Foundation
import SkiffImage
import SkiffJSON
import SkiffKernel
import SkiffLayers
import SkiffRuntime

/// What the engine keeps of one container, in `ROOT/containers/ID/container.json`: enough to
/// list it, start it again, and tell whether it still runs. Written atomically under the store's
/// lock; the monitor process that runs the container updates it as the container starts and ends.
public struct ContainerRecord: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case created, running, exited }

    public var id: String
    public var name: String
    /// The image as the user named it, and the image id it resolved to.
    public var image: String
    public var imageID: String
    /// The unpacked layer directories, bottom first.
    public var layers: [String]
    /// The process, as the runtime spec will carry it (Entrypoint + Cmd after the run's flags).
    public var command: [String]
    /// The run's flags, kept so that the monitor, and a later `skiff start`, build the same spec.
    public var options: RunOptions
    public var created: String
    public var autoRemove: Bool
    public var status: Status
    /// The monitor: the process that holds the container's mounts, reaps it and records its end.
    public var monitorPID: Int32?
    public var pid: Int32?
    public var exitCode: Int32?
    public var startedAt: String?
    public var finishedAt: String?

    public init(
        id: String, name: String, image: String, imageID: String, layers: [String], command: [String], options: RunOptions,
        autoRemove: Bool
    ) {
        self.options = options
        self.id = id
        self.name = name
        self.image = image
        self.imageID = imageID
        self.layers = layers
        self.command = command
        created = StateStore.timestamp()
        self.autoRemove = autoRemove
        status = .created
    }

    /// Docker's STATUS column: `Up`, `Exited (N)`, `Created`.
    public var statusText: String {
        switch status {
        case .created: "Created"
        case .running: "Up"
        case .exited: "Exited (\(exitCode ?? 0))"
        }
    }
}

/// The engine's containers under `ROOT/containers`, one directory each (see `ImageContainer` for
/// what the directory holds). Every change happens under one flock, so concurrent `skiff`
/// commands see each other's names. A record whose monitor died without writing its end is
/// repaired by `ContainerMonitor.containersRepaired`, so `skiff ps` shows the truth after a kill -9.
public struct ContainerStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public var directory: String { root + "/containers" }
    public func directory(of id: String) -> String { "\(directory)/\(id)" }
    func recordPath(_ id: String) -> String { directory(of: id) + "/container.json" }
    /// Where the container's output goes, and stays after it ends.
    public func logPath(_ id: String) -> String { directory(of: id) + "/container.log" }

    /// Runs `body` holding the store's lock.
    public func locked<Result>(_ body: () throws(SkiffError) -> Result) throws(SkiffError) -> Result {
        do {
            try Files.makeDirectories(directory, mode: 0o700)
        } catch {
            throw SkiffError(.setupFailed, "cannot create \(directory)", cause: error)
        }
        let lock: Files.FileLock
        do {
            lock = try Files.lock(directory + "/.lock")
        } catch {
            throw SkiffError(.setupFailed, "cannot lock the container store \(directory)", cause: error)
        }
        defer { lock.release() }
        return try body()
    }

    /// Gives container `id` the name `name`, refused when another container has it.
    public func rename(_ id: String, to name: String) throws(SkiffError) {
        try Self.validate(name: name)
        try locked { () throws(SkiffError) in
            try ensureFree(name, except: id)
            var record = try load(id)
            record.name = name
            try save(record)
        }
    }

    /// Records a new container; a name already taken is refused before anything is made.
    public func add(_ record: ContainerRecord) throws(SkiffError) {
        try locked { () throws(SkiffError) in
            try ensureFree(record.name, except: record.id)
            try save(record)
        }
    }

    /// Refuses `name` when a container other than `id` has it. Call holding the lock.
    private func ensureFree(_ name: String, except id: String) throws(SkiffError) {
        if let other = all().first(where: { $0.name == name && $0.id != id }) {
            throw SkiffError(
                .invalidInput,
                "the container name \"/\(name)\" is already in use by container \(other.id.prefix(12)): remove it or choose another name")
        }
    }

    public func save(_ record: ContainerRecord) throws(SkiffError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            try Files.makeDirectories(directory(of: record.id), mode: 0o700)
            try Files.writeAtomically(recordPath(record.id), Array(try encoder.encode(record)), mode: 0o600)
        } catch {
            throw SkiffError(.setupFailed, "cannot write the record of container \(record.id.prefix(12))", cause: error)
        }
    }

    /// Changes the record of `id` under the lock.
    public func update(_ id: String, _ change: (inout ContainerRecord) -> Void) throws(SkiffError) {
        try locked { () throws(SkiffError) in
            var record = try load(id)
            change(&record)
            try save(record)
        }
    }

    public func load(_ id: String) throws(SkiffError) -> ContainerRecord {
        guard let data = FileManager.default.contents(atPath: recordPath(id)) else {
            throw SkiffError(.invalidInput, "no such container: \(id)")
        }
        return try JSONInput.decode(
            ContainerRecord.self, from: data, label: "container \(id)", invalid: "the record of container \(id) is damaged")
    }

    /// Every container, newest first.
    public func all() -> [ContainerRecord] {
        let ids = (try? Files.names(in: directory)) ?? []
        return ids.filter { !$0.hasPrefix(".") }.compactMap { try? load($0) }.sorted { ($0.created, $0.id) > ($1.created, $1.id) }
    }

    /// The container a user means: a name, a full id or a unique prefix of one.
    public func resolve(_ text: String) throws(SkiffError) -> ContainerRecord {
        let records = all()
        if let byName = records.first(where: { $0.name == text || "/" + $0.name == text }) { return byName }
        let matches = records.filter { $0.id.hasPrefix(text) }
        guard !text.isEmpty, let first = matches.first else { throw SkiffError(.invalidInput, "no such container: \(text)") }
        guard matches.count == 1 else {
            throw SkiffError(.invalidInput, "container id prefix \"\(text)\" is ambiguous: give more of the id, or the name")
        }
        return first
    }

    public func remove(_ id: String) throws(SkiffError) {
        do {
            try FileTree.remove(directory(of: id))
        } catch {
            throw SkiffError(.setupFailed, "cannot remove container \(id.prefix(12))", cause: error)
        }
    }

    /// Docker's rule for names: a letter or digit, then letters, digits, `_`, `.` and `-`.
    public static func validate(name: String) throws(SkiffError) {
        let bytes = Array(name.utf8)
        func allowed(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) }
        guard let first = bytes.first, allowed(first), bytes.count >= 2, bytes.count <= 128,
            bytes.allSatisfy({ allowed($0) || $0 == 95 || $0 == 46 || $0 == 45 })
        else {
            throw SkiffError(
                .invalidInput, "invalid container name \"\(name)\": use [a-zA-Z0-9][a-zA-Z0-9_.-]+, at least two characters")
        }
    }

    /// A name of Docker's shape for a container the user did not name: two words and a number.
    public static func generatedName(for id: String) -> String {
        let adjectives = ["brisk", "calm", "eager", "gentle", "keen", "lucid", "nimble", "quiet", "steady", "swift", "tidy", "vivid"]
        let nouns = ["skiff", "dinghy", "ketch", "sloop", "yawl", "cutter", "punt", "raft", "canoe", "kayak", "barge", "tender"]
        let value = Int(id.prefix(8), radix: 16) ?? 0
        return "\(adjectives[value % adjectives.count])_\(nouns[(value / adjectives.count) % nouns.count])_\(value % 1000)"
    }
}
