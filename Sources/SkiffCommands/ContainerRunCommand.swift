import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffEngine
import SkiffImage
import SkiffKernel

/// `skiff run [-d] [--rm] [--name N] IMAGE [COMMAND...]`: a new container from an image. In the
/// foreground this process is the container's monitor and exits with its status; with `-d` a
/// monitor of its own (`skiff monitor ID`, in a session of its own) runs it, its output goes to
/// the container's log, and the id is printed once it runs. The image is pulled when the store
/// does not have it.
struct ContainerRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a new container from an image.",
        // -h is Docker's --hostname.
        helpNames: [.long])

    @OptionGroup var options: RegistryOptions
    @Flag(name: [.customShort("d"), .long], help: "Run in the background and print the container's id.") var detach = false
    @Flag(help: "Remove the container when it exits.") var rm = false
    @Option(help: "The container's name (default: a generated one).") var name: String?
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
            let root = options.global.rootPath
            let monitor = ContainerMonitor(root: root)
            // Now, while this process has one thread (a pull starts more).
            if !detach { try monitor.isolateMounts() }
            var runOptions = RunOptions(command: command.isEmpty ? nil : command)
            runOptions.entrypoint = entrypoint
            runOptions.environment = env
            runOptions.workingDirectory = workdir
            runOptions.user = user
            runOptions.hostname = hostname
            runOptions.readOnly = readOnly
            let record = try newContainer(monitor: monitor, options: runOptions)
            if detach {
                try startDetached(record.id, root: root, containers: monitor.containers)
                print(record.id)
                return
            }
            let status = try monitor.run(id: record.id) { _ in }
            throw ExitCode(status.code)
        }
    }

    /// The image resolved (or pulled) and unpacked, and the container recorded under its name.
    private func newContainer(monitor: ContainerMonitor, options runOptions: RunOptions) throws(SkiffError) -> ContainerRecord {
        if let name { try ContainerStore.validate(name: name) }
        let store = monitor.images
        let stored = try resolveOrPull(store)
        let layers = try store.unpack(stored)
        let id = ImageContainer.newID()
        let record = ContainerRecord(
            id: id, name: name ?? ContainerStore.generatedName(for: id), image: image, imageID: stored.id.description, layers: layers,
            command: command, options: runOptions, autoRemove: rm)
        try monitor.containers.add(record)
        return record
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

/// Starts `skiff monitor ID` for a recorded container and waits until it says the container
/// runs, or why it does not: the monitor writes `ok` or the error to descriptor 3.
func startDetached(_ id: String, root: String, containers: ContainerStore) throws(SkiffError) {
    let log = open(containers.logPath(id), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    let null = open("/dev/null", O_RDWR | O_CLOEXEC)
    defer { [log, null].forEach { _ = close($0) } }
    guard log >= 0, null >= 0 else {
        throw SkiffError(.setupFailed, "cannot prepare the monitor of container \(id.prefix(12))", cause: SyscallError("open"))
    }
    let pipe: (reader: Int32, writer: Int32)
    do {
        pipe = try Files.makePipe()
    } catch {
        throw SkiffError(.setupFailed, "cannot prepare the monitor of container \(id.prefix(12))", cause: error)
    }
    let report = [pipe.reader, pipe.writer]
    defer { close(report[0]) }
    do {
        _ = try Tool.spawnDetached(
            "/proc/self/exe", ["--root", root, "monitor", id], descriptors: [null, log, log, report[1]],
            environment: ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" })
    } catch {
        close(report[1])
        throw SkiffError(.setupFailed, "cannot start the monitor of container \(id.prefix(12))", cause: error)
    }
    close(report[1])
    let answer = String(decoding: Files.contents(of: report[0]), as: UTF8.self)
    guard answer == "ok" else {
        throw SkiffError(.setupFailed, answer.isEmpty ? "the monitor of container \(id.prefix(12)) ended before the container ran" : answer)
    }
}

/// `skiff monitor ID`: the parent of one detached container (see ContainerMonitor). Not for
/// people: `skiff run -d` and `skiff start` start it.
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor", abstract: "Run one container as its monitor.", shouldDisplay: false)
    @OptionGroup var global: SkiffOptions
    @Argument var id: String

    func run() throws {
        let monitor = ContainerMonitor(root: global.rootPath)
        var reported = false
        func report(_ text: String) {
            guard !reported else { return }
            reported = true
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(3, $0.baseAddress, $0.count) }
            close(3)
        }
        do {
            try monitor.isolateMounts()
            _ = try monitor.run(id: id) { error in report(error.map { "\($0)" } ?? "ok") }
        } catch {
            report("\(error)")
            throw ExitCode(125)
        }
    }
}
