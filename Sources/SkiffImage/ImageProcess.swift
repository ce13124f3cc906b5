import SkiffKernel

/// What a container made from an image runs, by Docker's rules: the process is Entrypoint + Cmd,
/// where the run's command replaces Cmd and a new entrypoint replaces both; the environment is
/// the image's with the run's entries on top, PATH when the image sets none, and HOSTNAME; the
/// working directory and user are the image's unless the run says otherwise. Pure: the engine
/// and lesson 12 both start from it.
public struct ImageProcess: Equatable, Sendable {
    /// Docker's PATH for an image that sets none.
    public static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public var args: [String]
    public var environment: [String]
    public var workingDirectory: String
    /// USER[:GROUP] as the image or the run gives it, still to be resolved in the container's
    /// /etc/passwd; nil for root.
    public var user: String?

    /// - Parameters:
    ///   - command: replaces the image's Cmd (the words after the image name).
    ///   - entrypoint: replaces the image's Entrypoint; "" clears it (`--entrypoint ""`).
    ///   - environment: `-e NAME=VALUE`, or `-e NAME` to take the value from `hostEnvironment`.
    public init(
        config image: ImageConfig, command: [String]? = nil, entrypoint: String? = nil, environment: [String] = [],
        workingDirectory: String? = nil, user: String? = nil, hostname: String, hostEnvironment: [String: String] = [:]
    ) throws(SkiffError) {
        let config = image.config ?? ImageConfig.RunConfig()
        let entrypointWords: [String] =
            switch entrypoint {
            case .some(""): []
            case .some(let word): [word]
            case .none: config.Entrypoint ?? []
            }
        // A new entrypoint drops the image's Cmd too, as in Docker.
        args = entrypointWords + (command ?? (entrypoint == nil ? config.Cmd ?? [] : []))
        guard !args.isEmpty else {
            throw SkiffError(.invalidInput, "no command: the image has no Cmd or Entrypoint; give one after the image name")
        }
        var merged = try Self.merged(config.Env ?? [], environment, hostEnvironment: hostEnvironment)
        if !merged.contains(where: { $0.hasPrefix("PATH=") }) { merged.insert(Self.defaultPath, at: 0) }
        merged.append("HOSTNAME=\(hostname)")
        self.environment = merged
        self.workingDirectory = workingDirectory ?? (config.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        guard self.workingDirectory.hasPrefix("/") else {
            throw SkiffError(.invalidInput, "working directory \"\(self.workingDirectory)\" must be absolute")
        }
        self.user = user ?? config.User.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The image's environment with the run's entries on top; `NAME` alone takes the host's
    /// value and is dropped when the host has none (as Docker does).
    public static func merged(_ base: [String], _ overrides: [String], hostEnvironment: [String: String]) throws(SkiffError) -> [String] {
        var result = base
        for entry in overrides {
            let name = String(entry.prefix { $0 != "=" })
            guard !name.isEmpty else { throw SkiffError(.invalidInput, "invalid environment variable \"\(entry)\": expected NAME=VALUE") }
            let value: String
            if entry.contains("=") {
                value = entry
            } else if let fromHost = hostEnvironment[name] {
                value = "\(name)=\(fromHost)"
            } else {
                continue
            }
            result.removeAll { $0 == name || $0.hasPrefix(name + "=") }
            result.append(value)
        }
        return result
    }
}
