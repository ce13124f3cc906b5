import Foundation
@preconcurrency import Glibc
import SkiffJSON
import SkiffKernel

/// What happens to one blob during a pull or push, for progress display.
public enum BlobEvent: Sendable {
    /// The transfer began; `total` is the blob's size, `done` what was already there (a resume).
    case started(Descriptor, done: Int64)
    case progressed(Descriptor, done: Int64)
    /// Nothing to move: `reason` says why ("already exists", "mounted from REPO").
    case skipped(Descriptor, reason: String)
    case finished(Descriptor)
}

/// Hears blob events; called from several threads at once.
public typealias BlobProgress = @Sendable (BlobEvent) -> Void

/// An image pulled into a BlobStore: everything the image store needs to record it.
public struct PulledImage: Sendable {
    public var reference: Reference
    /// The sha256 of the manifest's bytes as served: the image's repo digest.
    public var manifestDigest: Digest
    public var manifestBytes: [UInt8]
    public var manifestMediaType: String
    public var manifest: Manifest
    /// The index the manifest was chosen from, when the reference named a multi-platform image.
    public var indexDigest: Digest?
    public var configDigest: Digest
    public var config: ImageConfig
}

extension RegistryClient {
    /// Pulls `reference` into `store`: the manifest (the one for `platform` when it is an
    /// index), then the config and layers, `parallelism` at a time. Blobs already in the store
    /// are skipped, interrupted downloads resume with a Range request, and every blob is
    /// checked against its digest before it is stored. Manifest and index bytes are stored too.
    public func pull(
        _ reference: Reference, into store: BlobStore, platform: Platform = .current, parallelism: Int = 3,
        progress: BlobProgress? = nil
    ) throws(SkiffError) -> PulledImage {
        let repository = reference.repository
        var fetched = try manifest(repository: repository, reference: reference.manifestReference)
        var indexDigest: Digest?
        if MediaType.indexes.contains(fetched.mediaType) {
            let index = try JSONInput.decode(
                Index.self, from: Data(fetched.bytes), label: "index of \(reference)", invalid: "the index of \(reference) is not JSON")
            let chosen = try index.manifest(for: platform)
            try store.put(fetched.bytes, expected: fetched.digest)
            indexDigest = fetched.digest
            fetched = try manifest(repository: repository, reference: chosen.digest.description)
        }
        guard MediaType.manifests.contains(fetched.mediaType) else {
            throw SkiffError(
                .invalidInput, "pull \(reference): unsupported manifest type \(fetched.mediaType) (schema 1 images are not supported)")
        }
        let manifest = try JSONInput.decode(
            Manifest.self, from: Data(fetched.bytes), label: "manifest of \(reference)", invalid: "the manifest of \(reference) is not JSON"
        )
        try fetchBlobs(
            [manifest.config] + manifest.layers, repository: repository, into: store, parallelism: parallelism, progress: progress)
        let configBytes = try store.verifiedBytes(manifest.config.digest)
        let config = try JSONInput.decode(
            ImageConfig.self, from: Data(configBytes), label: "config of \(reference)", invalid: "the config of \(reference) is not JSON")
        // The manifest last: a store holding it holds everything it names.
        try store.put(fetched.bytes, expected: fetched.digest)
        return PulledImage(
            reference: reference, manifestDigest: fetched.digest, manifestBytes: fetched.bytes, manifestMediaType: fetched.mediaType,
            manifest: manifest, indexDigest: indexDigest, configDigest: manifest.config.digest, config: config)
    }

    /// Fetches each blob not yet in `store`, `parallelism` at a time; the first error wins
    /// once the transfers under way have ended.
    func fetchBlobs(
        _ descriptors: [Descriptor], repository: String, into store: BlobStore, parallelism: Int, progress: BlobProgress?
    ) throws(SkiffError) {
        var seen = Set<Digest>()
        let unique = descriptors.filter { seen.insert($0.digest).inserted }
        try inParallel(unique, width: parallelism) { descriptor throws(SkiffError) in
            try self.fetchBlob(descriptor, repository: repository, into: store, progress: progress)
        }
    }

    /// Downloads one blob into `store`, resuming a partial file left by an interrupted pull.
    public func fetchBlob(_ descriptor: Descriptor, repository: String, into store: BlobStore, progress: BlobProgress? = nil)
        throws(SkiffError)
    {
        let digest = descriptor.digest
        if store.contains(digest) {
            progress?(.skipped(descriptor, reason: "already exists"))
            return
        }
        try store.prepareIngest()
        let partial = store.partialPath(of: digest)
        let action = "pull blob \(digest.short) from \(registry)/\(repository)"
        let fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SkiffError(.setupFailed, "\(action): cannot open \(partial)", cause: SyscallError("open", path: partial))
        }
        defer { close(fd) }
        // One download of a blob at a time: a second pull of the same blob waits here, then
        // finds it stored by the first.
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        if store.contains(digest) {
            // Opened after the first pull moved its file in: ours is a new, empty one. Remove it
            // if the name is still ours.
            var mine = stat()
            var named = stat()
            if fstat(fd, &mine) == 0, stat(partial, &named) == 0, mine.st_ino == named.st_ino, mine.st_size == 0 { unlink(partial) }
            progress?(.skipped(descriptor, reason: "already exists"))
            return
        }
        // Three tries, each resuming where the previous one stopped, so a dropped connection
        // costs only what was not yet written.
        var lastError: SkiffError?
        for _ in 0..<3 {
            var have = Int64(lseek(fd, 0, SEEK_END))
            if have > descriptor.size {
                ftruncate(fd, 0)
                have = 0
            }
            if have == descriptor.size && have > 0 { break }
            progress?(.started(descriptor, done: have))
            var request = HTTPRequest("GET", "/v2/\(repository)/blobs/\(digest)")
            request.followRedirects = true
            if have > 0 { request.headers.append(("Range", "bytes=\(have)-")) }
            request.destination = .file(fd: fd, resumeAt: have)
            let counter = ByteCounter(start: have)
            let response: HTTPResponse
            do {
                response = try send(request, scope: Self.scope(repository, "pull"), action: action) { count in
                    progress?(.progressed(descriptor, done: counter.add(count)))
                }
            } catch {
                lastError = error  // the connection failed: try again from where it stopped
                continue
            }
            if response.status == 416 {
                // The range is past the end: what we have is not a prefix of this blob.
                ftruncate(fd, 0)
                lastError = failure(response, action: action)
                continue
            }
            guard response.status == 200 || response.status == 206 else { throw failure(response, action: action) }
            lastError = nil
            break
        }
        if let lastError { throw lastError }
        // The lock is held until the blob is in place: a waiting pull must find it stored, not
        // a finished partial file that it would try to move in as well.
        let size = Int64(lseek(fd, 0, SEEK_END))
        guard size == descriptor.size else {
            unlink(partial)
            throw SkiffError(.invalidInput, "\(action): got \(size) bytes, expected \(descriptor.size); not stored")
        }
        do {
            try store.ingest(file: partial, expected: digest)
        } catch {
            throw SkiffError(error.code, "\(action): \(error.message)", cause: error.cause)
        }
        progress?(.finished(descriptor))
    }
}

/// A running byte count shared by a transfer's callbacks.
final class ByteCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64

    init(start: Int64) { value = start }

    func add(_ count: Int) -> Int64 {
        lock.lock()
        defer { lock.unlock() }
        value += Int64(count)
        return value
    }
}

/// Runs `body` for every item on up to `width` threads and waits for all; rethrows the first
/// error. Threads rather than Swift tasks: each body blocks in libcurl, which would starve the
/// cooperative pool (two threads on a two-core machine).
func inParallel<Item: Sendable>(_ items: [Item], width: Int, _ body: @escaping @Sendable (Item) throws(SkiffError) -> Void)
    throws(SkiffError)
{
    guard items.count > 1, width > 1 else {
        for item in items { try body(item) }
        return
    }
    let shared = ParallelState()
    let group = DispatchGroup()
    for _ in 0..<min(width, items.count) {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while true {
                shared.lock.lock()
                let index = shared.next
                shared.next += 1
                let stop = shared.error != nil
                shared.lock.unlock()
                guard index < items.count, !stop else { return }
                do throws(SkiffError) {
                    try body(items[index])
                } catch {
                    shared.lock.lock()
                    if shared.error == nil { shared.error = error }
                    shared.lock.unlock()
                }
            }
        }
    }
    group.wait()
    if let error = shared.error { throw error }
}

/// The work queue and first error of one `inParallel` run.
private final class ParallelState: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var error: SkiffError?
}

extension ImageStore {
    /// Pulls `reference` with `client` into this store and names it: blobs and name under one
    /// lease, so that a concurrent `rmi` cannot collect blobs that are stored but not yet named.
    public func pull(
        _ reference: Reference, with client: RegistryClient, platform: Platform = .current, progress: BlobProgress? = nil
    ) throws(SkiffError) -> PulledImage {
        try withLease { () throws(SkiffError) -> PulledImage in
            let pulled = try client.pull(reference, into: blobs, platform: platform, progress: progress)
            try add(manifest: pulled.manifestDigest, references: [reference])
            return pulled
        }
    }
}
