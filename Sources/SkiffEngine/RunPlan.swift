import SkiffImage
import SkiffKernel
import SkiffRuntime
import SkiffSecurity

/// What `skiff run` asks for beyond the image: Docker's flags, as plain data.
public struct RunOptions: Equatable, Sendable {
    /// Replaces the image's Cmd (Docker: the words after the image name).
    public var command: [String]?
    /// Replaces the image's Entrypoint; an empty string clears it (`--entrypoint ""`).
    public var entrypoint: String?
    /// `-e NAME=VALUE` or `-e NAME` (taken from `hostEnvironment`).
    public var environment: [String] = []
    public var workingDirectory: String?
    /// `-u USER[:GROUP]`, resolved against the container's /etc/passwd and /etc/group.
    public var user: String?
    public var hostname: String?
    public var readOnly = false

    public init(command: [String]? = nil) { self.command = command }
}

/// An image's config and a run's options turned into an OCI runtime spec, as Docker's daemon
/// does before it calls runc: the process is Entrypoint + Cmd, the environment the image's with
/// the run's on top, the working directory and user from the image unless the run says
/// otherwise. Pure: the caller passes the container's /etc/passwd and /etc/group.
public enum RunPlan {
    /// Docker's PATH for an image that sets none.
    public static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public static func spec(
        image: ImageConfig, options: RunOptions, rootfs: String, id: String, passwd: String, group: String,
        hostEnvironment: [String: String] = [:]
    ) throws(SkiffError) -> Spec {
        let config = image.config ?? ImageConfig.RunConfig()
        let entrypoint: [String] =
            switch options.entrypoint {
            case .some(""): []
            case .some(let word): [word]
            case .none: config.Entrypoint ?? []
            }
        // A new entrypoint drops the image's Cmd too, as in Docker.
        let command = options.command ?? (options.entrypoint == nil ? config.Cmd ?? [] : [])
        let args = entrypoint + command
        guard !args.isEmpty else {
            throw SkiffError(.invalidInput, "no command: the image has no Cmd or Entrypoint; give one after the image name")
        }
        let hostname = options.hostname ?? String(id.prefix(12))
        var environment = try merged(config.Env ?? [], options.environment, hostEnvironment: hostEnvironment)
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) { environment.insert(defaultPath, at: 0) }
        environment.append("HOSTNAME=\(hostname)")
        let workingDirectory = options.workingDirectory ?? (config.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/")
        guard workingDirectory.hasPrefix("/") else {
            throw SkiffError(.invalidInput, "working directory \"\(workingDirectory)\" must be absolute")
        }
        let userText = options.user ?? config.User.flatMap { $0.isEmpty ? nil : $0 }
        let user = try userText.map { text throws(SkiffError) in try UserSpec(parsing: text).resolve(passwd: passwd, group: group) }

        var spec = DefaultSpec.make()
        spec.root = Spec.Root(path: rootfs, readonly: options.readOnly)
        spec.hostname = hostname
        spec.process?.args = args
        spec.process?.env = environment
        spec.process?.cwd = workingDirectory
        spec.process?.user = Spec.Process.User(
            uid: user?.uid ?? 0, gid: user?.gid ?? 0,
            additionalGids: user.map { $0.supplementaryGroups.isEmpty ? nil : $0.supplementaryGroups } ?? nil)
        if let user, user.uid != 0 {
            // A non-root user keeps no capabilities across execve (capabilities(7)), as in Docker.
            spec.process?.capabilities?.effective = []
            spec.process?.capabilities?.permitted = []
        }
        spec.annotations = ["org.skiff.image.created": image.created ?? ""].filter { !$0.value.isEmpty }
        return spec
    }

    /// The image's environment with the run's `-e` entries on top; `-e NAME` takes the value
    /// from the host, and is dropped when the host has none (as Docker does).
    static func merged(_ base: [String], _ overrides: [String], hostEnvironment: [String: String]) throws(SkiffError) -> [String] {
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
