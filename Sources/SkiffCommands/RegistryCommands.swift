import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffImage
import SkiffKernel

/// Options every registry command shares: the store (`--root`), and where logins and CAs live.
public struct RegistryOptions: ParsableArguments {
    @OptionGroup var global: SkiffOptions
    @Option(help: "The client config directory: config.json, daemon.json, certs.d (default: $SKIFF_CONFIG, else ~/.skiff).")
    var config: String = RegistrySettings.defaultConfigDirectory
    @Option(help: "A registry (HOST[:PORT]) that may be reached over plain HTTP; repeat.")
    var insecureRegistry: [String] = []

    public init() {}

    var settings: RegistrySettings { RegistrySettings(configDirectory: config, insecureRegistries: Set(insecureRegistry)) }

    func perform(_ body: () throws -> Void) throws { try global.perform(body) }
}

/// `skiff pull NAME[:TAG|@DIGEST]`: the image's blobs into the store, then its name.
public struct Pull: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "pull", abstract: "Download an image from a registry.")
    @OptionGroup var options: RegistryOptions
    @Option(help: "The platform to pull from a multi-platform image, e.g. linux/arm64 (default: this machine's).") var platform: String?
    @Argument(help: "The image, NAME[:TAG|@DIGEST].") var image: String

    public init() {}

    public func run() throws {
        try options.perform {
            let reference = try Reference(parsing: image)
            let wanted = try platform.map { text throws(SkiffError) in try Platform(parsing: text) } ?? .current
            if reference.digest == nil { print("\(reference.tag ?? "latest"): Pulling from \(reference.familiarName)") }
            let display = ProgressDisplay(verb: "Pull")
            let client = RegistryClient(registry: reference.registry, settings: options.settings)
            let pulled = try options.global.store.pull(reference, with: client, platform: wanted, progress: display.report)
            display.finish()
            print("Digest: \(pulled.indexDigest ?? pulled.manifestDigest)")
            print("Status: Downloaded image for \(reference)")
        }
    }
}

/// `skiff push NAME[:TAG]`: the image stored under that name, to the registry the name says.
public struct Push: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "push", abstract: "Upload an image to a registry.")
    @OptionGroup var options: RegistryOptions
    @Option(help: "A repository of the same registry that has the layers: mount them instead of uploading.") var mountFrom: String?
    @Option(help: "Upload blobs larger than this many bytes in chunks of this size.") var chunkSize: Int64 = 16 << 20
    @Argument(help: "The image, NAME[:TAG], as `skiff tag` named it.") var image: String

    public init() {}

    public func run() throws {
        try options.perform {
            let reference = try Reference(parsing: image)
            let store = options.global.store
            let stored: StoredImage
            do {
                stored = try store.resolve(image)
            } catch {
                throw SkiffError(
                    .invalidInput, "no image named \(reference) to push: give it that name first with skiff tag IMAGE \(reference)")
            }
            let bytes = try store.blobs.verifiedBytes(stored.manifestDigest)
            print("The push refers to repository [\(reference.registry)/\(reference.repository)]")
            let display = ProgressDisplay(verb: "Push")
            let client = RegistryClient(registry: reference.registry, settings: options.settings)
            let pushed = try client.push(
                manifestBytes: bytes, mediaType: stored.manifest.mediaType ?? MediaType.ociManifest, from: store.blobs, to: reference,
                mountFrom: mountFrom, chunkSize: chunkSize, progress: display.report)
            display.finish()
            print("\(reference.tag ?? "latest"): digest: \(pushed) size: \(bytes.count)")
        }
    }
}

/// `skiff login [-u USER] [-p PASS | --password-stdin] SERVER`: checks the credentials with
/// the registry, then saves them (config.json, mode 0600).
public struct Login: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "login", abstract: "Log in to a registry.")
    @OptionGroup var options: RegistryOptions
    @Option(name: [.short, .long], help: "The user name.") var username: String?
    @Option(name: [.short, .long], help: "The password (visible in ps: prefer --password-stdin).") var password: String?
    @Flag(help: "Read the password from standard input.") var passwordStdin = false
    @Argument(help: "The registry, HOST[:PORT] (default: Docker Hub).") var server: String = Reference.dockerHub

    public init() {}

    public func run() throws {
        try options.perform {
            let registry = Self.registryName(server)
            guard let username, !username.isEmpty else { throw SkiffError(.invalidInput, "login to \(registry): give a user name with -u") }
            var secret = password
            if passwordStdin { secret = readLine(strippingNewline: true) }
            guard let secret, !secret.isEmpty else {
                throw SkiffError(.invalidInput, "login to \(registry): give a password with --password-stdin or -p")
            }
            let credentials = Credentials(username: username, password: secret)
            let settings = options.settings
            try RegistryClient(registry: registry, settings: settings, credentials: credentials).verifyLogin()
            try settings.credentials.save(credentials, for: registry)
            print("Login Succeeded")
        }
    }

    /// `https://host/v1/` or `host`, as users paste them, to the registry name.
    static func registryName(_ text: String) -> String {
        var name = text
        for prefix in ["https://", "http://"] where name.hasPrefix(prefix) { name = String(name.dropFirst(prefix.count)) }
        name = String(name.prefix { $0 != "/" })
        return ["index.docker.io", "registry-1.docker.io", ""].contains(name) ? Reference.dockerHub : name
    }
}

/// `skiff logout [SERVER]`.
public struct Logout: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget the login for a registry.")
    @OptionGroup var options: RegistryOptions
    @Argument(help: "The registry, HOST[:PORT] (default: Docker Hub).") var server: String = Reference.dockerHub

    public init() {}

    public func run() throws {
        try options.perform {
            let registry = Login.registryName(server)
            if try options.settings.credentials.remove(for: registry) {
                print("Removing login credentials for \(registry)")
            } else {
                print("Not logged in to \(registry)")
            }
        }
    }
}

/// Per-blob progress: on a terminal one line per blob, redrawn in place (at most ten times a
/// second); otherwise one plain line when a blob starts, is skipped or is done, so logs stay
/// readable.
final class ProgressDisplay: @unchecked Sendable {
    private let verb: String
    private let isTerminal = isatty(STDOUT_FILENO) == 1
    private let lock = NSLock()
    private var order: [Digest] = []
    private var lines: [Digest: String] = [:]
    private var drawn = 0
    private var lastDraw = 0.0

    init(verb: String) { self.verb = verb }

    var report: BlobProgress { { [self] event in handle(event) } }

    private func handle(_ event: BlobEvent) {
        lock.lock()
        defer { lock.unlock() }
        let (descriptor, text, important): (Descriptor, String, Bool)
        switch event {
        case .started(let blob, let done):
            (descriptor, text, important) = (blob, done > 0 ? "Resuming at \(Self.size(done))" : "\(verb)ing", true)
        case .progressed(let blob, let done):
            (descriptor, text, important) = (
                blob, "\(verb)ing \(Self.bar(done, of: blob.size)) \(Self.size(done))/\(Self.size(blob.size))", false
            )
        case .skipped(let blob, let reason):
            (descriptor, text, important) = (blob, reason.prefix(1).uppercased() + reason.dropFirst(), true)
        case .finished(let blob):
            (descriptor, text, important) = (blob, "\(verb) complete", true)
        }
        let digest = descriptor.digest
        if lines[digest] == nil { order.append(digest) }
        lines[digest] = "\(digest.short): \(text)"
        guard isTerminal else {
            if important { print(lines[digest]!) }
            return
        }
        let now = Date().timeIntervalSince1970
        if important || now - lastDraw >= 0.1 { draw(at: now) }
    }

    private func draw(at time: Double) {
        var output = drawn > 0 ? "\u{1B}[\(drawn)A" : ""  // back to the first line drawn
        for digest in order { output += "\u{1B}[2K\(lines[digest] ?? "")\n" }
        drawn = order.count
        lastDraw = time
        print(output, terminator: "")
        fflush(nil)  // all streams: naming stdout is not concurrency-safe in Swift 6
    }

    /// Draws the final state once more.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if isTerminal && !order.isEmpty { draw(at: Date().timeIntervalSince1970) }
    }

    static func size(_ bytes: Int64) -> String {
        if bytes >= 1 << 20 { return String(format: "%.1fMB", Double(bytes) / 1_048_576) }
        if bytes >= 1 << 10 { return String(format: "%.1fkB", Double(bytes) / 1024) }
        return "\(bytes)B"
    }

    static func bar(_ done: Int64, of total: Int64) -> String {
        let width = 30
        let filled = total > 0 ? Int(Double(width) * Double(min(done, total)) / Double(total)) : 0
        return "[" + String(repeating: "=", count: filled) + (filled < width ? ">" : "")
            + String(repeating: " ", count: max(0, width - filled - 1)) + "]"
    }
}
