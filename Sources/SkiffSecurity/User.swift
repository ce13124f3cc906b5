import SkiffKernel

/// `--user UID[:GID]` or `NAME[:GROUP]`, as `docker run --user`: resolved inside the container
/// against its own /etc/passwd and /etc/group, never the host's.
public struct UserSpec: Equatable, Sendable {
    public let user: String
    public let group: String?

    public init(parsing text: String) throws(SkiffError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && !$0.contains(where: \.isWhitespace) }) else {
            throw SkiffError(.invalidInput, "invalid --user \"\(text)\": use UID[:GID] or NAME[:GROUP], e.g. 1000:1000 or nobody")
        }
        user = parts[0]
        group = parts.count == 2 ? parts[1] : nil
    }

    /// The ids to run as.
    public struct Resolved: Equatable, Sendable {
        public let uid: UInt32
        public let gid: UInt32
        /// The groups that list the user by name in /etc/group, besides its own.
        public let supplementaryGroups: [UInt32]
    }

    /// Resolves names (and a numeric uid's primary group) from the texts of /etc/passwd and
    /// /etc/group. A numeric uid missing from passwd runs with gid 0 unless a group is given, as
    /// Docker does.
    public func resolve(passwd: String, group groupText: String) throws(SkiffError) -> Resolved {
        let users = Self.entries(passwd, fields: 7)
        let groups = Self.entries(groupText, fields: 4)
        let entry = users.first { $0[0] == user } ?? UInt32(user).flatMap { uid in users.first { UInt32($0[2]) == uid } }
        guard let uid = UInt32(user) ?? entry.flatMap({ UInt32($0[2]) }) else {
            throw SkiffError(.invalidInput, "--user \(user): no such user in the container's /etc/passwd")
        }
        var gid = entry.flatMap { UInt32($0[3]) } ?? 0
        if let group {
            guard let resolved = UInt32(group) ?? groups.first(where: { $0[0] == group }).flatMap({ UInt32($0[2]) }) else {
                throw SkiffError(.invalidInput, "--user \(user):\(group): no such group in the container's /etc/group")
            }
            gid = resolved
        }
        let name = entry?[0]
        let supplementary = groups.filter { fields in
            name.map { fields[3].split(separator: ",").contains(Substring($0)) } ?? false
        }.compactMap { UInt32($0[2]) }.filter { $0 != gid }
        return Resolved(uid: uid, gid: gid, supplementaryGroups: supplementary)
    }

    static func entries(_ text: String, fields: Int) -> [[String]] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }.filter { $0.count >= fields }
    }
}

/// `--ulimit NAME=SOFT[:HARD]`, as `docker run --ulimit`.
public struct ResourceLimitSpec: Equatable, Sendable {
    public let name: String
    public let resource: Int32
    public let soft: UInt64
    public let hard: UInt64

    /// setrlimit(2)'s resources by their short names (getrlimit(2)).
    static let resources: [String: Int32] = [
        "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7, "memlock": 8, "as": 9,
        "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
    ]

    public init(parsing text: String) throws(SkiffError) {
        let invalid = SkiffError(
            .invalidInput,
            "invalid --ulimit \"\(text)\": use NAME=SOFT[:HARD] with SOFT <= HARD, e.g. nofile=1024:2048 (names: \(Self.resources.keys.sorted().joined(separator: " ")); -1 for unlimited)"
        )
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let resource = Self.resources[parts[0]] else { throw invalid }
        let values = parts[1].split(separator: ":", omittingEmptySubsequences: false).map { $0 == "-1" ? UInt64.max : UInt64($0) }
        guard (1...2).contains(values.count), let soft = values[0], let hard = values.last ?? nil, soft <= hard else { throw invalid }
        name = parts[0]
        self.resource = resource
        self.soft = soft
        self.hard = hard
    }

    public func apply(kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .setResourceLimit(resource: resource, name: "RLIMIT_\(name.uppercased())", soft: soft, hard: hard),
            why: "the \(name) limit, set while the container still may raise it")
    }
}
