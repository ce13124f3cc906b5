import ArgumentParser
import Foundation
import SkiffEngine
import SkiffImage
import SkiffKernel
import SkiffRootfs

/// `skiff run --rm IMAGE [COMMAND...]`: a container from an image, in the foreground, removed
/// when it exits. The image is pulled when the store does not have it. Kept containers (`-d`,
/// names, `ps`, `logs`) come with the engine; until then `--rm` is required, so that nothing is
/// left that no command could list.
struct ContainerRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a new container from an image, and remove the container when it exits.",
        // -h is Docker's --hostname.
        helpNames: [.long])

    @OptionGroup var options: RegistryOptions
    @Flag(help: "Remove the container when it exits (required for now).") var rm = false
    @Option(name: [.customShort("e"), .long], help: "Set NAME=VALUE (or NAME, from this environment); repeat.") var env: [String] = []
    @Option(name: [.customShort("w"), .long], help: "The working directory inside (default: the image's).") var workdir: String?
    @Option(name: [.customShort("u"), .long], help: "USER[:GROUP] of the container's /etc/passwd (default: the image's).") var user: String?
    @Option(name: [.customShort("h"), .long], help: "The container's hostname (default: its id's first 12 digits).") var hostname: String?
    @Option(help: "Replace the image's Entrypoint (\"\" clears it).") var entrypoint: String?
    @Flag(help: "Mount the container's root read-only.") var readOnly = false
    @Argument(help: "The image: NAME[:TAG], NAME@DIGEST or an image id.") var image: String
    @Argument(parsing: .captureForPassthrough, help: "The command, replacing the image's Cmd.") var command: [String] = []

    func run() throws {
        try options.perform {
            guard rm else {
                throw SkiffError(.invalidInput, "skiff run keeps no containers yet: add --rm (kept containers come with the engine)")
            }
            let kernel = Kernel()
            // Now, while this process has one thread: the container's root is mounted in a mount
            // table of its own, which goes away with this process however it ends.
            try Mounts.isolateThisProcess(kernel: kernel)
            let store = options.global.store
            var runOptions = RunOptions(command: command.isEmpty ? nil : command)
            runOptions.entrypoint = entrypoint
            runOptions.environment = env
            runOptions.workingDirectory = workdir
            runOptions.user = user
            runOptions.hostname = hostname
            runOptions.readOnly = readOnly
            let status = try store.withLease { () throws(SkiffError) -> ExitStatus in
                let stored = try resolveOrPull(store)
                let layers = try store.unpack(stored)
                let container = try ImageContainer(root: store.root, kernel: kernel)
                defer { try? container.remove() }
                do {
                    _ = try container.mountRootfs(layers: layers, hostname: hostname ?? String(container.id.prefix(12)))
                    let spec = try RunPlan.spec(
                        image: stored.config, options: runOptions, rootfs: container.rootfs, id: container.id,
                        passwd: container.readRootfsFile("/etc/passwd"), group: container.readRootfsFile("/etc/group"),
                        hostEnvironment: ProcessInfo.processInfo.environment)
                    return try container.run(spec: spec, runtimeRoot: store.root + "/runtime")
                } catch let error as SkiffError {
                    throw error
                } catch {
                    throw SkiffError(.setupFailed, "cannot run the container", cause: error)
                }
            }
            throw ExitCode(status.code)
        }
    }

    /// The stored image, or the image pulled from its registry when the store has none by that name.
    private func resolveOrPull(_ store: ImageStore) throws(SkiffError) -> StoredImage {
        do {
            return try store.resolve(image)
        } catch {
            guard let reference = try? Reference(parsing: image) else { throw error }
            printToStandardError("Unable to find image '\(reference)' locally")
            let display = ProgressDisplay(verb: "Pull")
            let client = RegistryClient(registry: reference.registry, settings: options.settings)
            _ = try store.pull(reference, with: client, progress: display.report)
            display.finish()
            return try store.resolve(image)
        }
    }
}
