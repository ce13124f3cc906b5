import Foundation
@preconcurrency import Glibc
import SkiffJSON
import SkiffKernel
import SkiffLayers

/// An image in the store: its manifest, its config and the names that point at it.
public struct StoredImage: Sendable {
    public let manifestDigest: Digest
    public let manifest: Manifest
    public let config: ImageConfig
    /// Every name:tag that resolves to this image, sorted; empty for a dangling image.
    public let references: [Reference]

    /// The image id, as Docker reports it: the digest of the config.
    public var id: Digest { manifest.config.digest }
    /// The bytes of its layers as stored (compressed or not), which is what it costs on disk.
    public var size: Int64 { manifest.layers.reduce(0) { $0 + $1.size } }
    /// One chain id per layer, bottom first: the key of the layer unpacked on top of those below.
    public var chainIDs: [Digest] { ImageStore.chainIDs(of: config.rootfs.diff_ids) }
}

/// One step of `skiff history`, newest first as Docker prints it.
public struct HistoryStep: Sendable, Equatable {
    /// The image id for the newest step; nil (`<missing>`) for the steps below, as Docker shows.
    public let imageID: Digest?
    public let created: String?
    public let createdBy: String
    /// The size of the layer the step made; 0 for steps that changed only the config.
    public let size: Int64
    public let comment: String
}

/// What `rmi` did, in Docker's words: `Untagged: busybox:latest`, `Deleted: sha256:...`.
public enum Removal: Sendable, Equatable, CustomStringConvertible {
    case untagged(Reference)
    case deleted(Digest)

    public var description: String {
        switch self {
        case .untagged(let reference): "Untagged: \(reference)"
        case .deleted(let digest): "Deleted: \(digest)"
        }
    }
}

/// The local image store: blobs in `ROOT/images/blobs/sha256` (a `BlobStore`), the names in
/// `ROOT/images/references.json`, and layers unpacked once in `ROOT/layers/CHAINID`, shared by
/// every image (and container) built on the same layers.
///
/// Concurrent `skiff` processes are safe: `references.json` changes only under an exclusive
/// flock(2) on `ROOT/images/state.lock` and is replaced atomically, so a reader or a crash sees
/// the old file or the new one. Adding content (load, import, pull, unpack) holds a shared lock
/// on `ROOT/gc.lock` and garbage collection an exclusive one, so a blob or layer that has just
/// arrived and is not yet named is never collected under a loader's feet.
public struct ImageStore: Sendable {
    /// `$SKIFF_ROOT`, or `/var/lib/skiff` as Docker has `/var/lib/docker`.
    public static var defaultRoot: String {
        if let value = getenv("SKIFF_ROOT"), value.pointee != 0 { return String(cString: value) }
        return "/var/lib/skiff"
    }

    public let root: String
    public let blobs: BlobStore
    /// How unpacked layers mark opaque directories: overlayfs reads `trusted.overlay.*` when root
    /// mounts it in the initial user namespace (the engine's case), `user.overlay.*` only with
    /// `userxattr` inside a user namespace (lessons 08-12), and only root may set trusted.*. As
    /// root the store sets both, so the engine and lesson 12 share the same unpacked layers.
    public let opaqueXattrs: [Whiteout.OpaqueXattr]
    /// Chain ids of layers that containers still use; the engine supplies it so that removing
    /// an image never pulls a layer from under a container.
    public let layersInUse: @Sendable () -> Set<Digest>

    public init(
        root: String = ImageStore.defaultRoot, opaqueXattrs: [Whiteout.OpaqueXattr] = geteuid() == 0 ? [.trusted, .user] : [.user],
        layersInUse: @escaping @Sendable () -> Set<Digest> = { [] }
    ) {
        self.root = root
        blobs = BlobStore(root: root + "/images")
        self.opaqueXattrs = opaqueXattrs
        self.layersInUse = layersInUse
    }

    var referencesFile: String { "\(root)/images/references.json" }
    var layersDirectory: String { "\(root)/layers" }
    /// Scratch space on the store's filesystem, so finished files are renamed, not copied, in.
    var temporaryDirectory: String { "\(root)/tmp" }

    /// Where the layer with `chainID` is unpacked.
    public func layerDirectory(for chainID: Digest) -> String { "\(layersDirectory)/\(chainID.hex)" }

    /// The OCI image spec's chain ids (config.md, "Layer ChainID"): the first layer's is its diff
    /// id; each next one is sha256 of "parent chain id + space + diff id".
    public static func chainIDs(of diffIDs: [Digest]) -> [Digest] {
        var result: [Digest] = []
        for diffID in diffIDs {
            result.append(result.last.map { Digest(of: Array("\($0) \(diffID)".utf8)) } ?? diffID)
        }
        return result
    }

    // MARK: names

    /// The names, as stored: `references` maps `registry/repository:tag` to a manifest digest;
    /// `images` lists every image in the store, named or dangling.
    struct State: Codable, Equatable {
        var references: [String: Digest] = [:]
        var images: [Digest] = []
    }

    /// `registry/repository:tag`, or `registry/repository@digest` for an image pulled by digest
    /// (Docker's RepoDigests), which lists with the tag `<none>`.
    static func key(_ reference: Reference) -> String {
        let name = "\(reference.registry)/\(reference.repository)"
        if let digest = reference.digest { return name + (reference.tag.map { ":" + $0 } ?? "") + "@\(digest)" }
        return name + ":" + (reference.tag ?? "latest")
    }

    func readState() throws(SkiffError) -> State {
        guard Files.exists(referencesFile) else { return State() }
        let text: String
        do {
            text = try Files.readText(referencesFile)
        } catch {
            throw SkiffError(.setupFailed, "cannot read the image names", cause: error)
        }
        return try JSONInput.decode(
            State.self, from: Data(text.utf8), label: referencesFile,
            invalid: "\(referencesFile) is damaged (not JSON): restore it from a backup or remove it and load the images again")
    }

    /// Runs `body` on the names under the state lock and saves what it leaves.
    func updateState<Result>(_ body: (inout State) throws(SkiffError) -> Result) throws(SkiffError) -> Result {
        try withFileLock("\(root)/images/state.lock", LOCK_EX) { () throws(SkiffError) -> Result in
            var state = try readState()
            let before = state
            let result = try body(&state)
            if state != before {
                do {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    try Files.writeAtomically(referencesFile, Array(try encoder.encode(state)), mode: 0o644)
                } catch {
                    throw SkiffError(.setupFailed, "cannot save the image names in \(referencesFile)", cause: error)
                }
            }
            return result
        }
    }

    /// Holds flock(2) `operation` on `path` while `body` runs.
    func withFileLock<Result>(_ path: String, _ operation: Int32, _ body: () throws(SkiffError) -> Result) throws(SkiffError) -> Result {
        do {
            try Files.makeDirectories(parentPath(path))
        } catch {
            throw SkiffError(.setupFailed, "cannot create the image store \(root)", cause: error)
        }
        let lock: Files.FileLock
        do {
            lock = try Files.lock(path, operation)
        } catch {
            throw SkiffError(.setupFailed, "cannot lock the image store", cause: error)
        }
        defer { lock.release() }
        return try body()
    }

    /// Runs `body` while no garbage collection can run: what it stores survives until it is named.
    /// Loading, importing, pulling and unpacking go through here. Leases nest, but `remove` must
    /// not be called inside one: its exclusive lock would wait for this process's own lease.
    public func withLease<Result>(_ body: () throws(SkiffError) -> Result) throws(SkiffError) -> Result {
        try withFileLock("\(root)/gc.lock", LOCK_SH, body)
    }

    /// Records the image whose manifest (already in the blob store, with its config and layers)
    /// is `manifestDigest`, under `references`. A name that pointed elsewhere moves here; the image
    /// it left stays, dangling, as with Docker.
    public func add(manifest manifestDigest: Digest, references: [Reference]) throws(SkiffError) {
        guard blobs.contains(manifestDigest) else {
            throw SkiffError(.invalidInput, "manifest \(manifestDigest) is not in the store: store its blobs first")
        }
        try updateState { (state: inout State) throws(SkiffError) in
            if !state.images.contains(manifestDigest) { state.images.append(manifestDigest) }
            for reference in references { state.references[Self.key(reference)] = manifestDigest }
        }
    }

    // MARK: reading

    /// Every image, newest first.
    public func images() throws(SkiffError) -> [StoredImage] {
        let state = try readState()
        var result: [StoredImage] = []
        for digest in state.images { result.append(try image(digest, in: state)) }
        return result.sorted { ($0.config.created ?? "", $0.id) > ($1.config.created ?? "", $1.id) }
    }

    func image(_ manifestDigest: Digest, in state: State) throws(SkiffError) -> StoredImage {
        let manifest = try document(Manifest.self, manifestDigest, what: "manifest")
        let config = try document(ImageConfig.self, manifest.config.digest, what: "image config")
        let references = state.references.filter { $0.value == manifestDigest }.keys.sorted().compactMap { try? Reference(parsing: $0) }
        return StoredImage(manifestDigest: manifestDigest, manifest: manifest, config: config, references: references)
    }

    /// A JSON document from the blob store, checked against its digest.
    func document<Value: Decodable>(_ type: Value.Type, _ digest: Digest, what: String) throws(SkiffError) -> Value {
        let bytes = try blobs.verifiedBytes(digest)
        return try JSONInput.decode(type, from: Data(bytes), label: "\(what) \(digest)", invalid: "\(what) \(digest) is not JSON")
    }

    /// The image a user means by `text`: a name (`busybox`, `busybox:1.36`, `localhost:5000/a/b`),
    /// `name@sha256:...`, or an image id or a unique prefix of one, with or without `sha256:`.
    public func resolve(_ text: String) throws(SkiffError) -> StoredImage {
        let state = try readState()
        return try image(try resolveManifest(text, in: state), in: state)
    }

    func resolveManifest(_ text: String, in state: State) throws(SkiffError) -> Digest {
        if let reference = try? Reference(parsing: text) {
            if let digest = reference.digest, state.images.contains(digest) { return digest }
            if let digest = state.references[Self.key(reference)] { return digest }
        }
        let prefix = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        if !prefix.isEmpty, prefix.utf8.count <= 64, prefix.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            var matches: [Digest: [Digest]] = [:]  // image id -> manifests
            for manifestDigest in state.images {
                guard let manifest = try? document(Manifest.self, manifestDigest, what: "manifest") else { continue }
                if manifest.config.digest.hex.hasPrefix(prefix) { matches[manifest.config.digest, default: []].append(manifestDigest) }
            }
            if matches.count > 1 {
                throw SkiffError(
                    .invalidInput,
                    "image id prefix \"\(text)\" is ambiguous: it matches \(matches.keys.sorted().map(\.short).joined(separator: ", ")); give more digits"
                )
            }
            if let (id, manifests) = matches.first {
                guard manifests.count == 1 else {
                    throw SkiffError(
                        .invalidInput, "image \(id.short) is stored under \(manifests.count) manifests: name one with NAME@DIGEST")
                }
                return manifests[0]
            }
        }
        throw SkiffError(.invalidInput, "no such image: \(text)")
    }

    /// The image's steps, newest first, each with the size of the layer it made.
    public func history(of image: StoredImage) -> [HistoryStep] {
        var layers = image.manifest.layers.makeIterator()
        let steps =
            image.config.history
            ?? image.manifest.layers.map { _ in ImageConfig.History() }
        var result: [HistoryStep] = []
        for step in steps {
            let size = step.empty_layer == true ? 0 : (layers.next()?.size ?? 0)
            result.append(
                HistoryStep(imageID: nil, created: step.created, createdBy: step.created_by ?? "", size: size, comment: step.comment ?? ""))
        }
        result.reverse()
        if let newest = result.first {
            result[0] = HistoryStep(
                imageID: image.id, created: newest.created, createdBy: newest.createdBy, size: newest.size, comment: newest.comment)
        }
        return result
    }

    // MARK: changing names

    /// Gives the image `source` names the name `target` as well (`docker tag`).
    public func tag(_ source: String, as target: String) throws(SkiffError) {
        let reference = try Reference(parsing: target)
        guard reference.digest == nil else {
            throw SkiffError(.invalidInput, "cannot tag with a digest (\(target)): a digest names content, give NAME:TAG")
        }
        try updateState { (state: inout State) throws(SkiffError) in
            state.references[Self.key(reference)] = try resolveManifest(source, in: state)
        }
    }

    /// `docker rmi`: a name is removed, and the image with it when it was the last name; an id
    /// removes the image and all its names, unless they span several repositories (then only
    /// with `force`). Blobs and unpacked layers no image needs any more go too.
    public func remove(_ text: String, force: Bool = false) throws(SkiffError) -> [Removal] {
        try withFileLock("\(root)/gc.lock", LOCK_EX) { () throws(SkiffError) -> [Removal] in
            let removals = try updateState { (state: inout State) throws(SkiffError) -> [Removal] in
                var removals: [Removal] = []
                let manifestDigest: Digest
                if let reference = try? Reference(parsing: text), let digest = state.references[Self.key(reference)] {
                    state.references[Self.key(reference)] = nil
                    removals.append(.untagged(reference))
                    manifestDigest = digest
                    if state.references.values.contains(digest) { return removals }
                } else {
                    manifestDigest = try resolveManifest(text, in: state)
                    let names = state.references.filter { $0.value == manifestDigest }.keys.sorted()
                    let repositories = Set(names.compactMap { try? Reference(parsing: $0) }.map { "\($0.registry)/\($0.repository)" })
                    guard repositories.count <= 1 || force else {
                        throw SkiffError(
                            .invalidInput,
                            "image \(text) is referenced in \(repositories.count) repositories (\(names.compactMap { try? Reference(parsing: $0).description }.joined(separator: ", "))): remove them by name, or use --force"
                        )
                    }
                    for name in names {
                        state.references[name] = nil
                        if let reference = try? Reference(parsing: name) { removals.append(.untagged(reference)) }
                    }
                }
                let id = (try? document(Manifest.self, manifestDigest, what: "manifest"))?.config.digest ?? manifestDigest
                state.images.removeAll { $0 == manifestDigest }
                removals.append(.deleted(id))
                return removals
            }
            try collectGarbage()
            return removals
        }
    }

    /// Removes blobs and unpacked layers that no image (or container, per `layersInUse`) needs.
    /// Call with the exclusive gc lock held.
    func collectGarbage() throws(SkiffError) {
        sweepStale()
        let state = try readState()
        var liveBlobs: Set<Digest> = []
        var liveLayers = layersInUse()
        for digest in state.images {
            liveBlobs.insert(digest)
            // A manifest we cannot read names blobs we cannot know: keep everything then.
            guard let manifest = try? document(Manifest.self, digest, what: "manifest") else { return }
            liveBlobs.insert(manifest.config.digest)
            liveBlobs.formUnion(manifest.layers.map(\.digest))
            if let config = try? document(ImageConfig.self, manifest.config.digest, what: "image config") {
                liveLayers.formUnion(Self.chainIDs(of: config.rootfs.diff_ids))
            }
        }
        for digest in blobs.all() where !liveBlobs.contains(digest) { blobs.remove(digest) }
        for name in (try? Files.names(in: layersDirectory)) ?? [] {
            guard let chainID = try? Digest("sha256:" + name), !liveLayers.contains(chainID) else { continue }
            do {
                try FileTree.remove("\(layersDirectory)/\(name)")
            } catch {
                throw SkiffError(.setupFailed, "cannot remove the unused layer \(layersDirectory)/\(name)", cause: error)
            }
        }
    }

    /// Removes what a skiff killed mid-way left behind: staging directories in `ROOT/tmp`,
    /// half-unpacked layers `ROOT/layers/.tmp-CHAINID-PID` and half-copied blobs
    /// `ROOT/images/ingest/copy-PID-N`, each named after its process; only those whose process
    /// is gone. Downloads (`HEX.partial`) stay: a pull resumes from them.
    func sweepStale() {
        let places: [(directory: String, ownerOf: (String) -> String?)] = [
            (temporaryDirectory, { name in name.split(separator: "-").dropFirst().first.map(String.init) }),
            (layersDirectory, { name in name.hasPrefix(".tmp-") ? name.split(separator: "-").last.map(String.init) : nil }),
            (
                blobs.root + "/ingest",
                { name in name.hasPrefix("copy-") ? name.split(separator: "-").dropFirst().first.map(String.init) : nil }
            ),
        ]
        for (directory, ownerOf) in places {
            for name in (try? Files.names(in: directory)) ?? [] {
                guard let owner = ownerOf(name).flatMap({ Int32($0) }), owner != getpid(), !ProcFS().isRunning(owner) else { continue }
                try? FileTree.remove("\(directory)/\(name)")
            }
        }
    }

    // MARK: layers

    /// The image's layers unpacked, bottom first, ready to be overlayfs lower directories. Each
    /// layer is unpacked once, into a temporary directory renamed into place when complete, so a
    /// layer directory that exists is whole. Its blob's uncompressed content is checked against
    /// the config's diff id first: layer directories are shared by chain id, so one image must
    /// not be able to put other content under another image's layer.
    public func unpack(_ image: StoredImage, progress: (LayerProgress) -> Void = { _ in }) throws(SkiffError) -> [String] {
        let diffIDs = image.config.rootfs.diff_ids
        guard diffIDs.count == image.manifest.layers.count else {
            throw SkiffError(
                .invalidInput,
                "image \(image.id.short) is inconsistent: its manifest has \(image.manifest.layers.count) layers, its config \(diffIDs.count)"
            )
        }
        return try withLease { () throws(SkiffError) -> [String] in
            var directories: [String] = []
            for (layer, chainID) in zip(image.manifest.layers, image.chainIDs) {
                let directory = layerDirectory(for: chainID)
                directories.append(directory)
                if Files.isDirectory(directory) == true { continue }
                progress(LayerProgress(digest: layer.digest, size: layer.size, state: .unpacking))
                let blob = blobs.path(of: layer.digest)
                guard blobs.contains(layer.digest) else {
                    throw SkiffError(
                        .invalidInput, "layer \(layer.digest) of image \(image.id.short) is missing from the store: load it again")
                }
                let index = directories.count - 1
                let temporary = "\(layersDirectory)/.tmp-\(chainID.hex)-\(getpid())"
                do {
                    try FileTree.remove(temporary)
                } catch {
                    throw SkiffError(.setupFailed, "cannot clear \(temporary)", cause: error)
                }
                let applier = LayerApplier(opaqueXattrs: opaqueXattrs)
                do {
                    // The diff id comes out of the same pass that writes the files, and is checked
                    // before the directory is published under its chain id.
                    let diffID = try applier.apply(blob, to: temporary).diffID
                    guard diffID == diffIDs[index].description else {
                        throw SkiffError(
                            .invalidInput,
                            "layer \(layer.digest) of image \(image.id.short) uncompresses to \(diffID), but its config says \(diffIDs[index]); refused"
                        )
                    }
                    // Another skiff may have finished the same layer meanwhile: then keep its copy.
                    if rename(temporary, directory) != 0 {
                        guard errno == EEXIST || errno == ENOTEMPTY else { throw SyscallError("rename", path: directory) }
                        try FileTree.remove(temporary)
                    }
                } catch {
                    try? FileTree.remove(temporary)
                    if let error = error as? SkiffError { throw error }
                    throw SkiffError(.setupFailed, "cannot unpack layer \(layer.digest) into \(directory)", cause: error)
                }
                progress(LayerProgress(digest: layer.digest, size: layer.size, state: .done))
            }
            return directories
        }
    }
}

/// What happens to one layer during load, import or unpack, for progress lines.
public struct LayerProgress: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case loading, unpacking, done, alreadyExists
    }

    public let digest: Digest
    public let size: Int64
    public let state: State
}

func parentPath(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}
