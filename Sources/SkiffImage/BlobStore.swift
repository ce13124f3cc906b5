@preconcurrency import Glibc
import SkiffKernel
import SkiffLayers

/// Content-addressed blobs under `ROOT/blobs/sha256/HEX`, as in an OCI image layout. A blob
/// enters only through `ingest`, which hashes what was written and refuses it if the digest
/// differs, so a file under its name always holds what the name says; reads verify again
/// (`verifiedBytes`) where the content is used as a document. Partial downloads wait in
/// `ROOT/ingest/HEX.partial`, so an interrupted pull resumes where it stopped.
public struct BlobStore: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// Where the blob with `digest` lives (whether or not it is there yet).
    public func path(of digest: Digest) -> String { "\(root)/blobs/sha256/\(digest.hex)" }

    /// Where a download of `digest` accumulates until it is complete.
    public func partialPath(of digest: Digest) -> String { "\(root)/ingest/\(digest.hex).partial" }

    public func contains(_ digest: Digest) -> Bool { Files.exists(path(of: digest)) }

    /// The blob's size in bytes, or nil when it is not stored.
    public func size(of digest: Digest) -> Int64? {
        var info = stat()
        return stat(path(of: digest), &info) == 0 ? Int64(info.st_size) : nil
    }

    /// Stores `bytes`, returning their digest; when `expected` is given, bytes that hash to
    /// anything else are refused and nothing is stored.
    @discardableResult
    public func put(_ bytes: [UInt8], expected: Digest? = nil) throws(SkiffError) -> Digest {
        let digest = Digest(of: bytes)
        if let expected, expected != digest {
            throw SkiffError(.invalidInput, "content does not match its digest: expected \(expected), got \(digest); not stored")
        }
        if contains(digest) { return digest }
        do {
            try Files.makeDirectories("\(root)/blobs/sha256")
            try Files.writeAtomically(path(of: digest), bytes, mode: 0o644)
        } catch {
            throw SkiffError(.setupFailed, "cannot store blob \(digest) under \(root)", cause: error)
        }
        return digest
    }

    /// Moves the finished file `file` (on the same filesystem, e.g. `partialPath(of:)`) into the
    /// store after hashing it. A mismatch removes the file and is an error naming both digests.
    @discardableResult
    public func ingest(file: String, expected: Digest?) throws(SkiffError) -> Digest {
        let actual = try Self.digest(ofFile: file)
        if let expected, expected != actual {
            unlink(file)
            throw SkiffError(.invalidInput, "blob is corrupt: expected \(expected), got \(actual); not stored")
        }
        do {
            try Files.makeDirectories("\(root)/blobs/sha256")
            fsyncFile(file)
            guard rename(file, path(of: actual)) == 0 else { throw SyscallError("rename", path: file) }
        } catch {
            unlink(file)
            throw SkiffError(.setupFailed, "cannot store blob \(actual) under \(root)", cause: error)
        }
        return actual
    }

    /// The blob's bytes, checked against its digest: a blob changed on disk is an error, never
    /// silently used.
    public func verifiedBytes(_ digest: Digest) throws(SkiffError) -> [UInt8] {
        let file = path(of: digest)
        guard let bytes = Self.read(file) else {
            throw SkiffError(.invalidInput, "blob \(digest) is not in the store \(root)")
        }
        guard Digest(of: bytes) == digest else {
            throw SkiffError(.invalidInput, "blob \(digest) in \(root) is corrupt (its content hashes differently): pull the image again")
        }
        return bytes
    }

    /// Removes a blob; a missing one is not an error.
    public func remove(_ digest: Digest) { unlink(path(of: digest)) }

    /// Every stored blob's digest.
    public func all() -> [Digest] {
        ((try? Files.names(in: "\(root)/blobs/sha256")) ?? []).compactMap { try? Digest("sha256:" + $0) }
    }

    /// Makes the directory partial downloads go to.
    public func prepareIngest() throws(SkiffError) {
        do {
            try Files.makeDirectories("\(root)/ingest")
        } catch {
            throw SkiffError(.setupFailed, "cannot create \(root)/ingest", cause: error)
        }
    }

    /// The sha256 of a file's bytes (SkiffLayers computes it the same way for layer tars).
    public static func digest(ofFile path: String) throws(SkiffError) -> Digest {
        do {
            return try Digest(sha256(of: path))
        } catch let error as SkiffError {
            throw error
        } catch {
            throw SkiffError(.setupFailed, "cannot read \(path)", cause: error)
        }
    }

    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return Files.contents(of: fd)
    }

    private func fsyncFile(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
