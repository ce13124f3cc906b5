import SkiffKernel

/// An image name as users type it, `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, read the way Docker
/// reads it (distribution's reference grammar): a first component with a `.` or `:` or equal to
/// `localhost` is a registry; otherwise the image is on Docker Hub, where one-word names live
/// under `library/`. The tag defaults to `latest` when there is no digest.
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    public static let dockerHub = "docker.io"

    /// `docker.io`, `localhost:5000`, `registry.example.com`.
    public var registry: String
    /// `library/busybox`, `team/app`.
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public init(registry: String = Reference.dockerHub, repository: String, tag: String? = "latest", digest: Digest? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses what a user typed; an invalid name is an error that says which part is wrong.
    public init(parsing text: String) throws(SkiffError) {
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            digest = try Digest(String(rest[rest.index(after: at)...]))
            rest = rest[..<at]
        }
        var tag: String?
        // A `:` after the last `/` starts the tag; one before it belongs to a registry's port.
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = Reference.dockerHub
        if components.count > 1, let first = components.first,
            first.contains(".") || first.contains(":") || first == "localhost" || first != first.lowercased()
        {
            registry = first
            components.removeFirst()
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = Reference.dockerHub }
        if registry == Reference.dockerHub && components.count == 1 { components.insert("library", at: 0) }
        let repository = components.joined(separator: "/")
        guard !repository.isEmpty, components.allSatisfy(Self.isValidComponent) else {
            throw SkiffError(
                .invalidInput,
                "invalid image name \"\(text)\": repository names are lowercase letters, digits and separators (. _ __ -), split by /")
        }
        if let tag {
            guard Self.isValidTag(tag) else {
                throw SkiffError(
                    .invalidInput,
                    "invalid tag in \"\(text)\": a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
            }
        }
        self.registry = registry
        self.repository = repository
        self.digest = digest
        self.tag = tag ?? (digest == nil ? "latest" : nil)
    }

    /// The name as Docker shows it: Hub images without `docker.io/library/`.
    public var familiarName: String {
        if registry == Reference.dockerHub {
            return repository.hasPrefix("library/") ? String(repository.dropFirst(8)) : repository
        }
        return "\(registry)/\(repository)"
    }

    /// `familiarName:tag`, or `familiarName@digest`.
    public var description: String {
        familiarName + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
    }

    /// What the registry's API wants after `/manifests/`: the digest if there is one, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The API endpoint host: Docker Hub's names are served by registry-1.docker.io.
    public var registryHost: String { registry == Reference.dockerHub ? "registry-1.docker.io" : registry }

    private static func isValidComponent(_ component: String) -> Bool {
        // [a-z0-9]+ joined by one of `.`, `_`, `__`, or any number of `-`.
        let bytes = Array(component.utf8)
        guard let first = bytes.first, let last = bytes.last, isAlnum(first), isAlnum(last) else { return false }
        var separator: [UInt8] = []
        for byte in bytes {
            if isAlnum(byte) {
                guard
                    separator.isEmpty || separator == [46] || separator == [95] || separator == [95, 95]
                        || separator.allSatisfy({ $0 == 45 })
                else { return false }
                separator = []
            } else if byte == 46 || byte == 95 || byte == 45 {
                separator.append(byte)
            } else {
                return false
            }
        }
        return true
    }

    private static func isAlnum(_ byte: UInt8) -> Bool { (97...122).contains(byte) || (48...57).contains(byte) }

    private static func isValidTag(_ tag: String) -> Bool {
        let bytes = Array(tag.utf8)
        guard let first = bytes.first, bytes.count <= 128, first != 46, first != 45 else { return false }
        return bytes.allSatisfy { isAlnum($0) || (65...90).contains($0) || $0 == 95 || $0 == 46 || $0 == 45 }
    }
}
