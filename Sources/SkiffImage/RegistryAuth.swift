import Foundation
@preconcurrency import Glibc
import SkiffKernel

/// How Skiff reaches registries, from its config directory (`$SKIFF_CONFIG`, else `~/.skiff`),
/// shaped like Docker's: `daemon.json` may list `insecure-registries`, and
/// `certs.d/HOST[:PORT]/*.crt` (also under /etc/skiff/certs.d, as /etc/docker/certs.d) are CA
/// certificates trusted for that registry on top of the system's.
public struct RegistrySettings: Sendable {
    public var configDirectory: String
    public var certsDirectories: [String]
    /// Registries (`HOST[:PORT]`) that may be reached over plain HTTP.
    public var insecureRegistries: Set<String>

    public init(configDirectory: String = RegistrySettings.defaultConfigDirectory, insecureRegistries: Set<String> = []) {
        self.configDirectory = configDirectory
        certsDirectories = [configDirectory + "/certs.d", "/etc/skiff/certs.d"]
        self.insecureRegistries = insecureRegistries.union(Self.configuredInsecureRegistries(in: configDirectory))
    }

    /// `$SKIFF_CONFIG`, else `$HOME/.skiff` (docker's `~/.docker`).
    public static var defaultConfigDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let directory = environment["SKIFF_CONFIG"], !directory.isEmpty { return directory }
        return (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root") + "/.skiff"
    }

    public var credentials: CredentialStore { CredentialStore(directory: configDirectory) }

    /// Whether `registry` may be spoken to without TLS: loopback names, as Docker allows for
    /// 127.0.0.0/8, and the names the user marked insecure. TLS is still tried first.
    public func allowsPlainHTTP(_ registry: String) -> Bool {
        if insecureRegistries.contains(registry) { return true }
        let host = Self.host(of: registry)
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The PEM text of every `*.crt` in `certs.d/HOST:PORT` (or `certs.d/HOST`), or nil.
    public func trustRoots(host: String, port: Int?) -> [UInt8]? {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let names = (port.map { ["\(bracketed):\($0)", "\(host):\($0)"] } ?? []) + [bracketed, host]
        var pem: [UInt8] = []
        for base in certsDirectories {
            for name in names {
                let directory = "\(base)/\(name)"
                // *.crt are CA roots; *.cert + *.key would be a client certificate (Docker's convention).
                for file in ((try? Files.names(in: directory)) ?? []) where file.hasSuffix(".crt") {
                    if let text = try? Files.readText("\(directory)/\(file)") { pem += Array((text + "\n").utf8) }
                }
                if !pem.isEmpty { return pem }
            }
        }
        return nil
    }

    static func host(of registry: String) -> String {
        if registry.hasPrefix("[") { return String(registry.dropFirst().prefix { $0 != "]" }) }
        if registry.filter({ $0 == ":" }).count > 1 { return registry }  // a bare IPv6 address
        return String(registry.prefix { $0 != ":" })
    }

    private static func configuredInsecureRegistries(in directory: String) -> Set<String> {
        guard let text = try? Files.readText(directory + "/daemon.json"),
            let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let names = object["insecure-registries"] as? [String]
        else { return [] }
        return Set(names)
    }
}

/// A user name and password (or token) for a registry.
public struct Credentials: Sendable, Equatable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The value of an `Authorization: Basic` header (RFC 7617).
    var basicAuthorization: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}

/// Saved logins, in `docker login`'s format so the file reads the same:
/// `DIRECTORY/config.json` = `{"auths": {"HOST": {"auth": base64("user:pass")}}}`, mode 0600,
/// replaced atomically. Other keys in the file are kept.
public struct CredentialStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public var file: String { directory + "/config.json" }

    /// The saved credentials for `registry`, or nil.
    public func credentials(for registry: String) -> Credentials? {
        guard let auths = (try? readConfig())?["auths"] as? [String: Any] else { return nil }
        for key in Self.keys(for: registry) {
            guard let entry = auths[key] as? [String: Any], let encoded = entry["auth"] as? String,
                let decoded = Data(base64Encoded: encoded), let text = String(data: decoded, encoding: .utf8),
                let colon = text.firstIndex(of: ":")
            else { continue }
            return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
        }
        return nil
    }

    /// Saves `credentials` for `registry`, replacing what was there.
    public func save(_ credentials: Credentials, for registry: String) throws(SkiffError) {
        var config = try readConfig()
        var auths = config["auths"] as? [String: Any] ?? [:]
        auths[Self.keys(for: registry)[0]] = ["auth": Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()]
        config["auths"] = auths
        try write(config)
    }

    /// Forgets the credentials for `registry`; false when there were none.
    @discardableResult
    public func remove(for registry: String) throws(SkiffError) -> Bool {
        var config = try readConfig()
        guard var auths = config["auths"] as? [String: Any] else { return false }
        let keys = Self.keys(for: registry).filter { auths[$0] != nil }
        guard !keys.isEmpty else { return false }
        for key in keys { auths[key] = nil }
        config["auths"] = auths
        try write(config)
        return true
    }

    /// Docker keeps Docker Hub's login under its v1 index URL; other registries by name.
    private static func keys(for registry: String) -> [String] {
        registry == Reference.dockerHub ? ["https://index.docker.io/v1/", Reference.dockerHub] : [registry]
    }

    private func readConfig() throws(SkiffError) -> [String: Any] {
        guard Files.exists(file) else { return [:] }
        let text: String
        do {
            text = try Files.readText(file)
        } catch {
            throw SkiffError(.setupFailed, "cannot read \(file)", cause: error)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw SkiffError(.invalidInput, "\(file) is not a JSON object: fix or remove it, then log in again")
        }
        return object
    }

    private func write(_ config: [String: Any]) throws(SkiffError) {
        do {
            try Files.makeDirectories(directory, mode: 0o700)
            let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
            // 0600: the file holds passwords (base64 is an encoding, not protection).
            try Files.writeAtomically(file, Array(data) + [10], mode: 0o600)
        } catch {
            throw SkiffError(.setupFailed, "cannot write \(file)", cause: error)
        }
    }
}

/// One challenge of a `WWW-Authenticate` header (RFC 7235): `Bearer realm="...",service="...",
/// scope="..."` from token-based registries, `Basic realm="..."` from htpasswd ones.
struct AuthChallenge: Equatable {
    /// Lowercased: `bearer`, `basic`.
    var scheme: String
    /// Parameter names lowercased, values unquoted.
    var parameters: [String: String]

    /// Every challenge in a header value; unparseable text gives none.
    static func parse(_ header: String) -> [AuthChallenge] {
        var challenges: [AuthChallenge] = []
        var rest = Substring(header)
        func skipSpaces() { rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "," } }
        func token() -> Substring {
            let word = rest.prefix { !" \t,=\"".contains($0) }
            rest = rest.dropFirst(word.count)
            return word
        }
        // Bounded by the header's length: each turn consumes at least one character or stops.
        while !rest.isEmpty {
            skipSpaces()
            let scheme = token()
            guard !scheme.isEmpty else { break }
            var parameters: [String: String] = [:]
            while true {
                skipSpaces()
                let save = rest
                let name = token()
                rest = rest.drop { $0 == " " }
                guard !name.isEmpty, rest.first == "=" else {
                    rest = save  // the next scheme starts here
                    break
                }
                rest = rest.dropFirst().drop { $0 == " " }
                var value = ""
                if rest.first == "\"" {
                    rest = rest.dropFirst()
                    while let character = rest.first, character != "\"" {
                        rest = rest.dropFirst()
                        if character == "\\", let escaped = rest.first {
                            value.append(escaped)
                            rest = rest.dropFirst()
                        } else {
                            value.append(character)
                        }
                    }
                    rest = rest.dropFirst()
                } else {
                    value = String(token())
                }
                parameters[name.lowercased()] = value
            }
            challenges.append(AuthChallenge(scheme: scheme.lowercased(), parameters: parameters))
        }
        return challenges
    }
}
