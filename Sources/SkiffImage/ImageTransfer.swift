import Foundation
@preconcurrency import Glibc
import SkiffJSON
import SkiffKernel
import SkiffLayers

/// One entry of a `docker save` archive's manifest.json: the config file, the names, and the
/// layer tars bottom first, each a path inside the archive. Docker before 25 writes
/// `ID.json` and `ID/layer.tar`; Docker 25 and later write an OCI layout beside it and point
/// into `blobs/sha256/`. Both read the same way.
struct DockerArchiveEntry: Codable {
    var Config: String
    var RepoTags: [String]?
    var Layers: [String]
}

/// The `oci-layout` file of an OCI image layout (image-layout.md).
struct ImageLayoutMarker: Codable {
    var imageLayoutVersion: String
}

/// Annotations that carry an image's name in an OCI layout's index.json: containerd and Docker
/// write the whole name in the first; the spec's own key often holds just the tag (skopeo).
enum LayoutAnnotation {
    static let imageName = "io.containerd.image.name"
    static let refName = "org.opencontainers.image.ref.name"
}

extension ImageStore {
    /// An image a load or import brought in.
    public struct Loaded: Sendable, Equatable {
        public let id: Digest
        public let manifestDigest: Digest
        public let references: [Reference]
    }

    /// JSON documents (manifests, configs, indexes) are small; a bigger one is an attack.
    static let maxDocumentBytes = 8 << 20

    /// `docker load`: reads a `docker save` archive, or an OCI image layout as a tar or a
    /// directory, and stores every image in it under the names it carries. Every blob is checked
    /// against its digest before it is named; a docker archive's layers, which have no digest of
    /// their own there, against the config's diff ids (an OCI layout's are checked on unpack).
    public func load(_ path: String, progress: (LayerProgress) -> Void = { _ in }) throws(SkiffError) -> [Loaded] {
        try withLease { () throws(SkiffError) -> [Loaded] in
            if Files.isDirectory(path) == true { return try loadDirectory(path, label: path, move: false, progress: progress) }
            guard Files.exists(path) else { throw SkiffError(.invalidInput, "\(path) does not exist: give a file made by save") }
            let staging = try makeTemporaryDirectory("load")
            defer { try? FileTree.remove(staging) }
            try ImageArchive.extract(path, to: staging)
            return try loadDirectory(staging, label: path, move: true, progress: progress)
        }
    }

    func loadDirectory(_ directory: String, label: String, move: Bool, progress: (LayerProgress) -> Void) throws(SkiffError) -> [Loaded] {
        if Files.exists(directory + "/manifest.json") {
            return try loadDockerArchive(directory, label: label, move: move, progress: progress)
        }
        if Files.exists(directory + "/oci-layout") && Files.exists(directory + "/index.json") {
            return try loadLayout(directory, label: label, move: move, progress: progress)
        }
        throw SkiffError(
            .invalidInput, "\(label) is neither a docker save archive (manifest.json) nor an OCI image layout (oci-layout, index.json)")
    }

    private func loadDockerArchive(_ directory: String, label: String, move: Bool, progress: (LayerProgress) -> Void) throws(SkiffError)
        -> [Loaded]
    {
        let entries = try decodeFile([DockerArchiveEntry].self, directory + "/manifest.json", label: "\(label): manifest.json")
        var loaded: [Loaded] = []
        var layersDone: [String: Descriptor] = [:]  // a layer listed by several images is stored once
        for entry in entries {
            let configPath = try memberPath(entry.Config, in: directory, label: label)
            let configBytes = try readDocument(configPath, label: "\(label): \(entry.Config)")
            let config = try decodeDocument(ImageConfig.self, configBytes, label: "\(label): \(entry.Config)")
            let diffIDs = config.rootfs.diff_ids
            guard diffIDs.count == entry.Layers.count else {
                throw SkiffError(
                    .invalidInput,
                    "\(label): \(entry.Config) lists \(diffIDs.count) layers but manifest.json \(entry.Layers.count); refused")
            }
            let configDigest = try blobs.put(configBytes)
            var layers: [Descriptor] = []
            for (name, diffID) in zip(entry.Layers, diffIDs) {
                if let done = layersDone[name] {
                    layers.append(done)
                    continue
                }
                let path = try memberPath(name, in: directory, label: label)
                guard let size = regularFileSize(path) else { throw SkiffError(.invalidInput, "\(label): layer \(name) is missing") }
                let mediaType = ImageArchive.layerMediaType(of: path)
                let digest: Digest
                if mediaType == MediaType.ociLayer {
                    // Uncompressed: the digest is the diff id, checked while the blob is stored.
                    digest = diffID
                } else {
                    // Compressed: nothing in a docker archive names its digest, so its diff id is
                    // what ties it to the config; a corrupted layer is refused here, not stored.
                    let actual = try ImageArchive.diffID(of: path)
                    guard actual == diffID else {
                        throw SkiffError(
                            .invalidInput, "\(label): layer \(name) is \(actual) uncompressed, but the config says \(diffID); refused")
                    }
                    digest = try BlobStore.digest(ofFile: path)
                }
                if blobs.contains(digest) {
                    progress(LayerProgress(digest: digest, size: size, state: .alreadyExists))
                } else {
                    progress(LayerProgress(digest: digest, size: size, state: .loading))
                    try ingest(path, expected: digest, move: move, label: "\(label): layer \(name)")
                    progress(LayerProgress(digest: digest, size: size, state: .done))
                }
                let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: size)
                layersDone[name] = descriptor
                layers.append(descriptor)
            }
            let manifest = Manifest(
                config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)), layers: layers)
            let manifestDigest = try blobs.put(try Self.encode(manifest))
            var references: [Reference] = []
            for tag in entry.RepoTags ?? [] { references.append(try Reference(parsing: tag)) }
            try add(manifest: manifestDigest, references: references)
            loaded.append(Loaded(id: configDigest, manifestDigest: manifestDigest, references: references))
        }
        return loaded
    }

    private func loadLayout(_ directory: String, label: String, move: Bool, progress: (LayerProgress) -> Void) throws(SkiffError)
        -> [Loaded]
    {
        let marker = try decodeFile(ImageLayoutMarker.self, directory + "/oci-layout", label: "\(label): oci-layout")
        guard marker.imageLayoutVersion.hasPrefix("1.") else {
            throw SkiffError(.invalidInput, "\(label): OCI image layout version \(marker.imageLayoutVersion) is not supported (1.x is)")
        }
        let index = try decodeFile(Index.self, directory + "/index.json", label: "\(label): index.json")
        var loaded: [Loaded] = []
        for entry in index.manifests {
            var descriptor = entry
            if MediaType.indexes.contains(descriptor.mediaType) {
                let nested = try decodeDocument(
                    Index.self, try layoutDocument(descriptor, in: directory, label: label), label: "\(label): index")
                descriptor = try nested.manifest(for: .current)
            }
            guard MediaType.manifests.contains(descriptor.mediaType) else {
                throw SkiffError(.invalidInput, "\(label): index.json lists \(descriptor.mediaType), which is not an image manifest")
            }
            let manifestBytes = try layoutDocument(descriptor, in: directory, label: label)
            let manifest = try decodeDocument(Manifest.self, manifestBytes, label: "\(label): manifest \(descriptor.digest)")
            let configBytes = try layoutDocument(manifest.config, in: directory, label: label)
            let config = try decodeDocument(ImageConfig.self, configBytes, label: "\(label): config \(manifest.config.digest)")
            guard config.rootfs.diff_ids.count == manifest.layers.count else {
                throw SkiffError(
                    .invalidInput,
                    "\(label): manifest \(descriptor.digest) has \(manifest.layers.count) layers but its config \(config.rootfs.diff_ids.count); refused"
                )
            }
            for layer in manifest.layers {
                if blobs.contains(layer.digest) {
                    progress(LayerProgress(digest: layer.digest, size: layer.size, state: .alreadyExists))
                    continue
                }
                let path = "\(directory)/blobs/sha256/\(layer.digest.hex)"
                guard regularFileSize(path) == layer.size else {
                    throw SkiffError(.invalidInput, "\(label): layer \(layer.digest) is missing or not \(layer.size) bytes; refused")
                }
                progress(LayerProgress(digest: layer.digest, size: layer.size, state: .loading))
                try ingest(path, expected: layer.digest, move: move, label: "\(label): layer \(layer.digest)")
                progress(LayerProgress(digest: layer.digest, size: layer.size, state: .done))
            }
            try blobs.put(configBytes, expected: manifest.config.digest)
            try blobs.put(manifestBytes, expected: descriptor.digest)
            let references = try layoutReferences(entry.annotations ?? [:])
            try add(manifest: descriptor.digest, references: references)
            loaded.append(Loaded(id: manifest.config.digest, manifestDigest: descriptor.digest, references: references))
        }
        return loaded
    }

    /// The name an index entry carries: the whole name if a tool wrote it, or a ref.name that is
    /// itself a whole name. A bare tag (skopeo's `oci:DIR:TAG`) names no repository: no name then.
    private func layoutReferences(_ annotations: [String: String]) throws(SkiffError) -> [Reference] {
        if let name = annotations[LayoutAnnotation.imageName] { return [try Reference(parsing: name)] }
        if let name = annotations[LayoutAnnotation.refName], name.contains("/") || name.contains(":") {
            return [try Reference(parsing: name)]
        }
        return []
    }

    /// A JSON document a descriptor points at inside a layout, checked against its digest and size.
    private func layoutDocument(_ descriptor: Descriptor, in directory: String, label: String) throws(SkiffError) -> [UInt8] {
        let bytes = try readDocument("\(directory)/blobs/sha256/\(descriptor.digest.hex)", label: "\(label): blob \(descriptor.digest)")
        guard Digest(of: bytes) == descriptor.digest, Int64(bytes.count) == descriptor.size else {
            throw SkiffError(.invalidInput, "\(label): blob \(descriptor.digest) does not match its digest or size; refused")
        }
        return bytes
    }

    // MARK: import

    /// `docker import`: the root filesystem tar at `path` (plain, gzip or zstd) becomes a
    /// one-layer image, stored as it is with the media type that says how it is compressed.
    public func importTar(
        _ path: String, as reference: Reference?, created: Date = Date(), platform: Platform = .current,
        progress: (LayerProgress) -> Void = { _ in }
    ) throws(SkiffError) -> Loaded {
        guard regularFileSize(path) != nil else {
            throw SkiffError(.invalidInput, "\(path) is not a file: give a tar of a root filesystem")
        }
        return try withLease { () throws(SkiffError) -> Loaded in
            let mediaType = ImageArchive.layerMediaType(of: path)
            let diffID = try ImageArchive.diffID(of: path)
            let digest = try ingest(path, expected: nil, move: false, label: path)
            let size = blobs.size(of: digest) ?? 0
            progress(LayerProgress(digest: digest, size: size, state: .done))
            let timestamp = Self.timestamp(created)
            let config = ImageConfig(
                platform: platform, diffIDs: [diffID],
                history: [ImageConfig.History(created: timestamp, createdBy: "skiff import", comment: "imported from \(baseName(path))")],
                created: timestamp)
            let configBytes = try Self.encode(config)
            let configDigest = try blobs.put(configBytes)
            let manifest = Manifest(
                config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)),
                layers: [Descriptor(mediaType: mediaType, digest: digest, size: size)])
            let manifestDigest = try blobs.put(try Self.encode(manifest))
            let references = reference.map { [$0] } ?? []
            try add(manifest: manifestDigest, references: references)
            return Loaded(id: configDigest, manifestDigest: manifestDigest, references: references)
        }
    }

    /// The image's filesystem as one plain tar, its layers stacked and whiteouts applied (the
    /// inverse of `importTar`; a container's export adds its own layer on top the same way).
    public func exportRootfs(_ image: StoredImage, to path: String) throws(SkiffError) {
        let layers = image.manifest.layers.map { blobs.path(of: $0.digest) }
        for layer in image.manifest.layers where !blobs.contains(layer.digest) {
            throw SkiffError(.invalidInput, "layer \(layer.digest) of image \(image.id.short) is missing from the store: load it again")
        }
        try withLease { () throws(SkiffError) in try ImageArchive.flatten(layers: layers, to: path) }
    }

    /// RFC 3339 in UTC, as image configs write times.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    // MARK: save

    /// `docker save`: writes the images as one archive that is both an OCI image layout
    /// (oci-layout, index.json, blobs/sha256) and a `docker save` archive (manifest.json,
    /// repositories), as Docker 25 does, so Docker of any version, skopeo, umoci and Skiff read
    /// it. `asDirectory` writes the layout as a directory instead of a tar.
    public func save(_ names: [String], to path: String, asDirectory: Bool = false) throws(SkiffError) {
        guard !names.isEmpty else { throw SkiffError(.invalidInput, "save needs at least one image") }
        let state = try readState()
        var chosen: [(image: StoredImage, references: [Reference])] = []
        for name in names {
            let image = try image(try resolveManifest(name, in: state), in: state)
            // A name saves that name; an id saves the image with all of its names, as Docker does.
            let asked = (try? Reference(parsing: name)).flatMap { reference in
                image.references.contains(reference) ? [reference] : nil
            }
            if let index = chosen.firstIndex(where: { $0.image.manifestDigest == image.manifestDigest }) {
                chosen[index].references += (asked ?? image.references).filter { !chosen[index].references.contains($0) }
            } else {
                chosen.append((image, asked ?? image.references))
            }
        }
        var members: [ImageArchive.Member] = []
        var indexEntries: [Descriptor] = []
        var archiveEntries: [DockerArchiveEntry] = []
        var repositories: [String: [String: String]] = [:]
        var blobDigests: [Digest] = []
        for (image, references) in chosen {
            let manifestDescriptor = Descriptor(
                mediaType: image.manifest.mediaType ?? MediaType.ociManifest, digest: image.manifestDigest,
                size: blobs.size(of: image.manifestDigest) ?? 0)
            if references.isEmpty { indexEntries.append(manifestDescriptor) }
            for reference in references {
                var entry = manifestDescriptor
                entry.annotations = [
                    LayoutAnnotation.imageName: "\(reference.registry)/\(reference.repository):\(reference.tag ?? "latest")",
                    LayoutAnnotation.refName: reference.tag ?? "latest",
                ]
                indexEntries.append(entry)
                repositories[reference.familiarName, default: [:]][reference.tag ?? "latest"] = image.id.hex
            }
            archiveEntries.append(
                DockerArchiveEntry(
                    Config: "blobs/sha256/\(image.id.hex)", RepoTags: references.map(\.description),
                    Layers: image.manifest.layers.map { "blobs/sha256/\($0.digest.hex)" }))
            for digest in [image.manifestDigest, image.id] + image.manifest.layers.map(\.digest) where !blobDigests.contains(digest) {
                guard blobs.contains(digest) else {
                    throw SkiffError(
                        .invalidInput, "blob \(digest) of image \(image.id.short) is missing from the store: load the image again")
                }
                blobDigests.append(digest)
            }
        }
        members.append(.init("oci-layout", .bytes(try Self.encode(ImageLayoutMarker(imageLayoutVersion: "1.0.0")))))
        members.append(.init("index.json", .bytes(try Self.encode(Index(manifests: indexEntries)))))
        members.append(.init("manifest.json", .bytes(try Self.encode(archiveEntries))))
        members.append(.init("repositories", .bytes(try Self.encode(repositories))))
        members += blobDigests.map { .init("blobs/sha256/\($0.hex)", .file(blobs.path(of: $0))) }
        if asDirectory {
            try Self.writeDirectory(members, to: path)
        } else {
            try ImageArchive.writeTar(members, to: path)
        }
    }

    /// Writes `members` as files under `directory` (an OCI layout directory).
    static func writeDirectory(_ members: [ImageArchive.Member], to directory: String) throws(SkiffError) {
        do {
            for member in members {
                let path = "\(directory)/\(member.name)"
                try Files.makeDirectories(parentPath(path))
                switch member.content {
                case .bytes(let bytes): try Files.writeAtomically(path, bytes, mode: 0o644)
                case .file(let source): try copyFile(source, to: path)
                }
            }
        } catch let error as SkiffError {
            throw error
        } catch {
            throw SkiffError(.setupFailed, "cannot write the image layout \(directory)", cause: error)
        }
    }

    // MARK: helpers

    /// Canonical JSON: sorted keys, so the same document always has the same digest.
    static func encode(_ value: some Encodable) throws(SkiffError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw SkiffError(.setupFailed, "cannot encode \(type(of: value)) as JSON", cause: error)
        }
    }

    /// Stores the file at `path`: renamed in when it is ours to take (a staging copy on the store's
    /// filesystem), copied first otherwise. The blob store hashes it and refuses a mismatch.
    @discardableResult
    func ingest(_ path: String, expected: Digest?, move: Bool, label: String) throws(SkiffError) -> Digest {
        if move { return try blobs.ingest(file: path, expected: expected) }
        try blobs.prepareIngest()
        let copy = "\(blobs.root)/ingest/copy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try Self.copyFile(path, to: copy)
        } catch {
            unlink(copy)
            throw SkiffError(.setupFailed, "cannot copy \(label) into the store", cause: error)
        }
        return try blobs.ingest(file: copy, expected: expected)
    }

    static func copyFile(_ source: String, to target: String) throws(SkiffError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw SkiffError(.invalidInput, "cannot read \(source)", cause: SyscallError("open", path: source)) }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw SkiffError(.setupFailed, "cannot create \(target)", cause: SyscallError("open", path: target)) }
        defer { close(output) }
        try copy(from: input, named: source, to: output, named: target)
    }

    /// Copies everything readable from `input` to `output` (files, pipes, standard streams).
    public static func copy(from input: Int32, named source: String, to output: Int32, named target: String) throws(SkiffError) {
        do {
            try Files.forEachChunk(of: input, path: source) { chunk in try writeAll(output, chunk, path: target) }
        } catch let error as SkiffError {
            throw error
        } catch {
            throw SkiffError(.invalidInput, "cannot read \(source)", cause: error)
        }
    }

    /// Runs `body` with the path of a new, empty file in the store's scratch space (on the
    /// store's filesystem), removed afterwards: where standard input is collected for `load` and
    /// `import`, and where `save` writes before the archive goes to standard output.
    public func withTemporaryFile<Result>(_ purpose: String, _ body: (String) throws(SkiffError) -> Result) throws(SkiffError) -> Result {
        let directory = try makeTemporaryDirectory(purpose)
        defer { try? FileTree.remove(directory) }
        return try body(directory + "/file")
    }

    /// A file named inside an archive, as a path under the directory it was unpacked into.
    private func memberPath(_ name: String, in directory: String, label: String) throws(SkiffError) -> String {
        let components = try ImageArchive.memberComponents(name, in: label)
        guard !components.isEmpty else { throw SkiffError(.invalidInput, "\(label): an empty file name in manifest.json") }
        return "\(directory)/\(components.joined(separator: "/"))"
    }

    /// A small JSON file, read without following a symlink and refused when too big.
    func readDocument(_ path: String, label: String) throws(SkiffError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SkiffError(.invalidInput, "\(label) is missing", cause: SyscallError("open", path: path)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= Self.maxDocumentBytes else {
            throw SkiffError(.invalidInput, "\(label) is not a file of at most \(Self.maxDocumentBytes >> 20) MiB; refused")
        }
        return Files.contents(of: fd)
    }

    private func decodeFile<Value: Decodable>(_ type: Value.Type, _ path: String, label: String) throws(SkiffError) -> Value {
        try decodeDocument(type, try readDocument(path, label: label), label: label)
    }

    private func decodeDocument<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8], label: String) throws(SkiffError) -> Value {
        try JSONInput.decode(type, from: Data(bytes), label: label, invalid: "\(label) is not valid JSON")
    }

    private func regularFileSize(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    /// A new directory under the store's scratch space; the caller removes it.
    func makeTemporaryDirectory(_ purpose: String) throws(SkiffError) -> String {
        do {
            try Files.makeDirectories(temporaryDirectory, mode: 0o700)
        } catch {
            throw SkiffError(.setupFailed, "cannot create \(temporaryDirectory)", cause: error)
        }
        var template = Array("\(temporaryDirectory)/\(purpose)-\(getpid())-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SkiffError(.setupFailed, "cannot create a directory in \(temporaryDirectory)", cause: SyscallError("mkdtemp"))
        }
        return String(cString: made)
    }
}

func baseName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
