import SkiffImage
import SkiffKernel
import SkiffRuntime
import SkiffSecurity

/// What `skiff run` asks for beyond the image: Docker's flags, as plain data.
public struct RunOptions: Codable, Equatable, Sendable {
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
/// does before it calls runc (the process by `ImageProcess`'s rules). Pure: the caller passes
/// the container's /etc/passwd and /etc/group.
public enum RunPlan {
    public static func spec(
        image: ImageConfig, options: RunOptions, rootfs: String, id: String, passwd: String, group: String,
        hostEnvironment: [String: String] = [:]
    ) throws(SkiffError) -> Spec {
        let hostname = options.hostname ?? String(id.prefix(12))
        let process = try ImageProcess(
            config: image, command: options.command, entrypoint: options.entrypoint, environment: options.environment,
            workingDirectory: options.workingDirectory, user: options.user, hostname: hostname, hostEnvironment: hostEnvironment)
        let user = try process.user.map { text throws(SkiffError) in try UserSpec(parsing: text).resolve(passwd: passwd, group: group) }

        var spec = DefaultSpec.make()
        spec.root = Spec.Root(path: rootfs, readonly: options.readOnly)
        spec.hostname = hostname
        spec.process?.args = process.args
        spec.process?.env = process.environment
        spec.process?.cwd = process.workingDirectory
        spec.process?.user = Spec.Process.User(
            uid: user?.uid ?? 0, gid: user?.gid ?? 0,
            additionalGids: user.map { $0.supplementaryGroups.isEmpty ? nil : $0.supplementaryGroups } ?? nil)
        if let user, user.uid != 0 {
            // A non-root user keeps no capabilities across execve (capabilities(7)), as in Docker.
            spec.process?.capabilities?.effective = []
            spec.process?.capabilities?.permitted = []
        }
        return spec
    }
}
