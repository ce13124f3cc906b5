import Foundation
@preconcurrency import Glibc
import SkiffJSON
import SkiffKernel

extension RegistryClient {
    /// Pushes an image from `store` to `reference`: every blob the manifest names (skipping
    /// those the repository has, mounting from `mountFrom`, a repository of the same registry,
    /// when given), then the manifest under the reference's tag (or digest). An index pushes
    /// each of its manifests that the store holds first. Blobs larger than `chunkSize` go up in
    /// PATCH chunks of that size; smaller ones in one PUT. Returns the manifest's digest.
    @discardableResult
    public func push(
        manifestBytes: [UInt8], mediaType: String, from store: BlobStore, to reference: Reference, mountFrom: String? = nil,
        chunkSize: Int64 = 16 << 20, parallelism: Int = 3, progress: BlobProgress? = nil
    ) throws(SkiffError) -> Digest {
        let repository = reference.repository
        if MediaType.indexes.contains(mediaType) {
            let index = try JSONInput.decode(
                Index.self, from: Data(manifestBytes), label: "index", invalid: "the index to push is not JSON")
            for entry in index.manifests where store.contains(entry.digest) {
                let bytes = try store.verifiedBytes(entry.digest)
                let child = Reference(registry: reference.registry, repository: repository, tag: nil, digest: entry.digest)
                try push(
                    manifestBytes: bytes, mediaType: entry.mediaType, from: store, to: child, mountFrom: mountFrom, chunkSize: chunkSize,
                    parallelism: parallelism, progress: progress)
            }
        } else {
            let manifest = try JSONInput.decode(
                Manifest.self, from: Data(manifestBytes), label: "manifest", invalid: "the manifest to push is not JSON")
            var seen = Set<Digest>()
            let blobs = ([manifest.config] + manifest.layers).filter { seen.insert($0.digest).inserted }
            try inParallel(blobs, width: parallelism) { descriptor throws(SkiffError) in
                try self.pushBlob(
                    descriptor, from: store, repository: repository, mountFrom: mountFrom, chunkSize: chunkSize, progress: progress)
            }
        }
        let digest = try putManifest(
            repository: repository, reference: reference.manifestReference, bytes: manifestBytes, mediaType: mediaType)
        if let expected = reference.digest, expected != digest {
            throw SkiffError(.invalidInput, "push \(reference): the manifest's digest is \(digest), not the one in the reference")
        }
        return digest
    }

    /// Uploads one blob unless the repository has it: cross-repository mount when `mountFrom`
    /// is given and the registry offers it, else a monolithic PUT or PATCH chunks.
    public func pushBlob(
        _ descriptor: Descriptor, from store: BlobStore, repository: String, mountFrom: String? = nil, chunkSize: Int64 = 16 << 20,
        progress: BlobProgress? = nil
    ) throws(SkiffError) {
        let digest = descriptor.digest
        let action = "push blob \(digest.short) to \(registry)/\(repository)"
        // The token must allow pulling from the mount source as well (one scope per repository).
        let scope = Self.scope(repository, "pull,push") + (mountFrom.map { " " + Self.scope($0, "pull") } ?? "")
        if try blobExists(repository: repository, digest: digest, scope: scope) {
            progress?(.skipped(descriptor, reason: "already exists"))
            return
        }
        guard let size = store.size(of: digest) else {
            throw SkiffError(.invalidInput, "\(action): blob \(digest) is not in the store \(store.root)")
        }

        var start = HTTPRequest("POST", "/v2/\(repository)/blobs/uploads/")
        if let mountFrom, mountFrom != repository {
            start.url += "?mount=\(digest)&from=\(Self.queryEscaped(mountFrom))"
        }
        let started = try send(start, scope: scope, action: action)
        if started.status == 201 {
            progress?(.skipped(descriptor, reason: "mounted from \(mountFrom ?? repository)"))
            return
        }
        guard started.status == 202, var location = started.header("Location") else { throw failure(started, action: action) }

        let path = store.path(of: digest)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SkiffError(.setupFailed, "\(action): cannot open \(path)", cause: SyscallError("open", path: path)) }
        defer { close(fd) }
        progress?(.started(descriptor, done: 0))
        let counter = ByteCounter(start: 0)
        let report: (Int) -> Void = { progress?(.progressed(descriptor, done: counter.add($0))) }

        var finish = HTTPRequest("PUT", "", headers: [("Content-Type", "application/octet-stream")])
        if size <= chunkSize {
            finish.body = .file(fd: fd, offset: 0, length: size)
        } else {
            // Chunks in order, each at the Location the previous answer gave (spec: "Pushing a
            // blob in chunks"); the count is bounded by the size, so the loop is too.
            var offset: Int64 = 0
            while offset < size {
                let length = min(chunkSize, size - offset)
                var patch = HTTPRequest(
                    "PATCH", try resolve(location, action: action),
                    headers: [("Content-Type", "application/octet-stream"), ("Content-Range", "\(offset)-\(offset + length - 1)")])
                patch.body = .file(fd: fd, offset: offset, length: length)
                let answer = try send(patch, scope: scope, action: action, progress: report)
                guard answer.status == 202, let next = answer.header("Location") else { throw failure(answer, action: action) }
                location = next
                offset += length
            }
        }
        finish.url = try resolve(location, action: action)
        finish.url += (finish.url.contains("?") ? "&" : "?") + "digest=\(digest)"
        let done = try send(finish, scope: scope, action: action, progress: report)
        guard done.status == 201 else { throw failure(done, action: action) }
        progress?(.finished(descriptor))
    }

    /// A Location header made absolute: registries send paths (`/v2/...`) or full URLs.
    private func resolve(_ location: String, action: String) throws(SkiffError) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        guard location.hasPrefix("/") else {
            throw SkiffError(.setupFailed, "\(action): \(registry) sent an unusable upload location \"\(location)\"")
        }
        return location  // `send` puts the registry's base URL in front
    }

    static func queryEscaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?"))) ?? text
    }
}
