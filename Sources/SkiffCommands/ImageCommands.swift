import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffImage
import SkiffKernel

struct ImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List images.")
    @OptionGroup var global: SkiffOptions
    @Flag(name: .shortAndLong, help: "Only show image ids.") var quiet = false
    @Flag(help: "Show whole ids.") var noTrunc = false
    @Argument(help: "Only images of this repository (REPOSITORY[:TAG]).") var repository: String?

    func run() throws {
        try global.perform {
            let filter = try repository.map { try Reference(parsing: $0) }
            // A filter without a tag matches every tag, as with `docker images busybox`.
            let filterHasTag = repository.map { $0.split(separator: "/").last?.contains(":") ?? false } ?? false
            var rows: [[String]] = []
            for image in try global.store.images() {
                let id = noTrunc ? image.id.description : image.id.short
                let names: [(String, String)] =
                    image.references.isEmpty ? [("<none>", "<none>")] : image.references.map { ($0.familiarName, $0.tag ?? "<none>") }
                for (name, tag) in names {
                    if let filter {
                        guard name == filter.familiarName, !filterHasTag || tag == filter.tag else { continue }
                    }
                    rows.append(quiet ? [id] : [name, tag, id, created(image.config.created), humanSize(image.size)])
                }
            }
            if quiet {
                rows.forEach { print($0[0]) }
            } else {
                printTable(header: ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows: rows)
            }
        }
    }
}

struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Give an image another name.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "The image: a name or an id.") var source: String
    @Argument(help: "The new name, NAME[:TAG].") var target: String

    func run() throws {
        try global.perform { try global.store.tag(source, as: target) }
    }
}

struct RemoveImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove images (names, and the content no image needs).")
    @OptionGroup var global: SkiffOptions
    @Flag(name: .shortAndLong, help: "Remove an image named in several repositories, with all its names.") var force = false
    @Argument(help: "Images: names or ids.") var images: [String]

    func run() throws {
        try global.perform {
            // As docker: every image is tried; the first failure decides the exit status.
            var firstError: (any Error)?
            for image in images {
                do {
                    try global.store.remove(image, force: force).forEach { print($0) }
                } catch {
                    if firstError == nil { firstError = error } else { printToStandardError("skiff: \(error)") }
                }
            }
            if let firstError { throw firstError }
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Show how an image was made.")
    @OptionGroup var global: SkiffOptions
    @Flag(help: "Show whole ids and commands.") var noTrunc = false
    @Flag(name: .shortAndLong, help: "Only show image ids.") var quiet = false
    @Argument(help: "The image: a name or an id.") var image: String

    func run() throws {
        try global.perform {
            let store = global.store
            let steps = store.history(of: try store.resolve(image))
            let ids = steps.map { step in step.imageID.map { noTrunc ? $0.description : $0.short } ?? "<missing>" }
            if quiet {
                ids.forEach { print($0) }
                return
            }
            let rows = zip(ids, steps).map { id, step in
                let command = noTrunc || step.createdBy.count <= 45 ? step.createdBy : step.createdBy.prefix(44) + "…"
                return [id, created(step.created), command, humanSize(step.size), step.comment]
            }
            printTable(header: ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows: rows)
        }
    }
}

/// What `skiff inspect` prints for an image: Docker's field names, so scripts written for
/// `docker image inspect` read it.
struct ImageInspection: Encodable {
    struct RootFS: Encodable {
        let `Type`: String
        let Layers: [Digest]
    }

    let Id: Digest
    let RepoTags: [String]
    let RepoDigests: [String]
    let Created: String?
    let Author: String?
    let Architecture: String
    let Variant: String?
    let Os: String
    let Config: ImageConfig.RunConfig?
    let RootFS: RootFS
    let Size: Int64
    let ManifestDigest: Digest
    let ManifestMediaType: String?
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show images' details as JSON.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "Images: names or ids.") var images: [String]

    func run() throws {
        try global.perform {
            var result: [ImageInspection] = []
            for name in images {
                let image = try global.store.resolve(name)
                result.append(
                    ImageInspection(
                        Id: image.id, RepoTags: image.references.filter { $0.digest == nil }.map(\.description),
                        RepoDigests: image.references.filter { $0.digest != nil }.map(\.description), Created: image.config.created,
                        Author: image.config.author, Architecture: image.config.architecture, Variant: image.config.variant,
                        Os: image.config.os, Config: image.config.config,
                        RootFS: .init(Type: image.config.rootfs.type, Layers: image.config.rootfs.diff_ids), Size: image.size,
                        ManifestDigest: image.manifestDigest, ManifestMediaType: image.manifest.mediaType))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        }
    }
}

struct SaveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Write images to a tar that docker load, skopeo and umoci read (an OCI layout with Docker's manifest.json).",
        discussion:
            "Without -o the tar goes to standard output. If the output is a directory, or ends with /, the layout is written as a directory."
    )
    @OptionGroup var global: SkiffOptions
    @Option(name: .shortAndLong, help: "The file to write (default: standard output).") var output: String?
    @Argument(help: "Images: names or ids.") var images: [String]

    func run() throws {
        try global.perform {
            let store = global.store
            guard let output else {
                // As docker: a tar on a terminal is noise, and likely a mistake.
                guard isatty(STDOUT_FILENO) == 0 else {
                    throw SkiffError(.invalidInput, "refusing to write a tar to a terminal: use -o FILE or redirect standard output")
                }
                try store.withTemporaryFile("save") { (path: String) throws(SkiffError) in
                    try store.save(images, to: path)
                    let fd = open(path, O_RDONLY | O_CLOEXEC)
                    guard fd >= 0 else { throw SkiffError(.setupFailed, "cannot read \(path)", cause: SyscallError("open", path: path)) }
                    defer { close(fd) }
                    try ImageStore.copy(from: fd, named: path, to: STDOUT_FILENO, named: "standard output")
                }
                return
            }
            let asDirectory = output.hasSuffix("/") || Files.isDirectory(output) == true
            try store.save(images, to: output, asDirectory: asDirectory)
        }
    }
}

struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load images from a docker save archive or an OCI layout (tar or directory).")
    @OptionGroup var global: SkiffOptions
    @Option(name: .shortAndLong, help: "The archive to read (default: standard input).") var input: String?
    @Flag(name: .shortAndLong, help: "Print no progress.") var quiet = false

    func run() throws {
        try global.perform {
            let store = global.store
            let progress = LayerProgressPrinter(quiet: quiet)
            let loaded = try fromFileOrStandardInput(input, store: store, purpose: "load") { (path: String) throws(SkiffError) in
                try store.load(path, progress: progress.show)
            }
            for image in loaded {
                if image.references.isEmpty {
                    print("Loaded image ID: \(image.id)")
                } else {
                    image.references.forEach { print("Loaded image: \($0)") }
                }
            }
        }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Make a one-layer image from a root filesystem tar (plain, gzip or zstd).")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "The tar file, or - for standard input.") var file: String
    @Argument(help: "The image's name, NAME[:TAG].") var name: String?

    func run() throws {
        try global.perform {
            let store = global.store
            let reference = try name.map { try Reference(parsing: $0) }
            let imported = try fromFileOrStandardInput(file == "-" ? nil : file, store: store, purpose: "import") {
                (path: String) throws(SkiffError) in try store.importTar(path, as: reference)
            }
            print(imported.id)
        }
    }
}

/// Runs `body` on `path`, or, when there is none, on a copy of standard input (refused when
/// standard input is a terminal: nobody types a tar).
func fromFileOrStandardInput<Result>(
    _ path: String?, store: ImageStore, purpose: String, _ body: (String) throws(SkiffError) -> Result
) throws(SkiffError) -> Result {
    if let path { return try body(path) }
    guard isatty(STDIN_FILENO) == 0 else {
        throw SkiffError(.invalidInput, "\(purpose) reads standard input, which is a terminal: give a file (-i FILE) or pipe one in")
    }
    return try store.withTemporaryFile(purpose) { (file: String) throws(SkiffError) -> Result in
        try collectStandardInput(into: file)
        return try body(file)
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a container's filesystem (needs containers, which the engine adds).")
    @OptionGroup var global: SkiffOptions
    @Option(name: .shortAndLong, help: "The file to write.") var output: String?
    @Argument(help: "The container.") var container: String

    func run() throws {
        try global.perform {
            throw SkiffError(
                .invalidInput,
                "export writes a container's filesystem, and this skiff has no containers yet: for an image, use skiff save -o FILE IMAGE")
        }
    }
}

/// Progress of load and unpack: on a terminal, one line per layer that updates in place; in a
/// log or pipe, one plain line per event.
struct LayerProgressPrinter {
    let quiet: Bool
    let terminal = isatty(STDOUT_FILENO) == 1

    func show(_ progress: LayerProgress) {
        guard !quiet else { return }
        let name = progress.digest.short
        let size = humanSize(progress.size)
        switch (progress.state, terminal) {
        case (.loading, true): emit("\(name): Loading \(size)")
        case (.unpacking, true): emit("\(name): Unpacking \(size)")
        case (.done, true): emit("\r\u{1B}[K\(name): Loaded \(size)\n")
        case (.alreadyExists, _): emit("\(name): Already exists\n")
        case (.loading, false): emit("\(name): loading \(size)\n")
        case (.unpacking, false): emit("\(name): unpacking \(size)\n")
        case (.done, false): emit("\(name): done\n")
        }
    }

    private func emit(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }
}

private func collectStandardInput(into file: String) throws(SkiffError) {
    let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SkiffError(.setupFailed, "cannot create \(file)", cause: SyscallError("open", path: file)) }
    defer { close(fd) }
    try ImageStore.copy(from: STDIN_FILENO, named: "standard input", to: fd, named: file)
}

/// Columns padded as Docker's tabwriter does: each as wide as its widest cell, three spaces apart.
func printTable(header: [String], rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
        }
        print(cells.joined().trimmingCharacters(in: .whitespaces))
    }
}

/// Bytes as Docker shows them (go-units HumanSize): decimal units, three significant digits.
func humanSize(_ bytes: Int64) -> String {
    var value = Double(bytes)
    var unit = 0
    let units = ["B", "kB", "MB", "GB", "TB", "PB"]
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return String(format: "%.3g", value) + units[unit]
}

/// "2 weeks ago", from an RFC 3339 time, as Docker's CREATED column (go-units HumanDuration).
func created(_ timestamp: String?, now: Date = Date()) -> String {
    guard let timestamp, let date = parseTimestamp(timestamp) else { return "N/A" }
    let seconds = Int(now.timeIntervalSince(date))
    let minutes = seconds / 60
    let hours = Int((Double(seconds) / 3600).rounded())
    let text: String
    switch seconds {
    case ..<1: text = "Less than a second"
    case 1: text = "1 second"
    case ..<60: text = "\(seconds) seconds"
    case ..<120: text = "About a minute"
    case ..<3600: text = "\(minutes) minutes"
    default:
        switch hours {
        case 1: text = "About an hour"
        case ..<48: text = "\(hours) hours"
        case ..<(24 * 7 * 2): text = "\(hours / 24) days"
        case ..<(24 * 30 * 2): text = "\(hours / 24 / 7) weeks"
        case ..<(24 * 365 * 2): text = "\(hours / 24 / 30) months"
        default: text = "\(hours / 24 / 365) years"
        }
    }
    return text + " ago"
}

/// RFC 3339 with any number of fractional digits (Docker writes nanoseconds, which
/// ISO8601DateFormatter does not read): the fraction is dropped.
func parseTimestamp(_ text: String) -> Date? {
    var trimmed = text
    if let dot = text.firstIndex(of: ".") {
        let rest = text[text.index(after: dot)...].drop { $0.isNumber }
        trimmed = String(text[..<dot]) + rest
    }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: trimmed)
}
