import CArchive
import Crypto
@preconcurrency import Glibc
import SkiffKernel

/// The decompressed bytes of a layer blob (gzip, zstd, or none: any filter libarchive knows),
/// hashed as they pass, with a tar reader on top of them. Unpacking a layer through it yields
/// the layer's diff id (the sha256 of the uncompressed tar, OCI image-spec config.md) from the
/// same pass that writes the files: no second decompression just to check the content.
final class DecompressedStream {
    private let source: OpaquePointer
    private let path: String
    private var hasher = SHA256()
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 1 << 17
    /// Why reading the compressed file failed, for the tar reader's error.
    private(set) var failure: String?

    init(_ path: String) throws(SkiffError) {
        guard let source = archive_read_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a reader") }
        archive_read_support_filter_all(source)
        // The raw format: the whole decompressed stream as one entry, whatever it holds.
        archive_read_support_format_raw(source)
        var entry: OpaquePointer?
        guard archive_read_open_filename(source, path, 1 << 17) == ARCHIVE_OK, archive_read_next_header(source, &entry) == ARCHIVE_OK
        else {
            let message = archiveError(source)
            archive_read_free(source)
            throw SkiffError(.invalidInput, "cannot read the layer \(path): \(message)")
        }
        self.source = source
        self.path = path
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        archive_read_free(source)
        buffer.deallocate()
    }

    /// The next decompressed piece, hashed; 0 at the end, -1 on an error.
    fileprivate func next(_ out: UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int {
        let count = archive_read_data(source, buffer, capacity)
        if count > 0 {
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: count))
            out?.pointee = UnsafeRawPointer(buffer)
        } else if count < 0 {
            failure = archiveError(source)
        }
        return count
    }

    /// A tar reader of the decompressed stream; free it with archive_read_free before this
    /// stream goes.
    func tarReader() throws(SkiffError) -> OpaquePointer {
        guard let reader = archive_read_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a reader") }
        archive_read_support_format_tar(reader)
        let context = Unmanaged.passUnretained(self).toOpaque()
        guard archive_read_open(reader, context, nil, readDecompressed, nil) == ARCHIVE_OK else {
            let message = failure ?? archiveError(reader)
            archive_read_free(reader)
            throw SkiffError(.invalidInput, "cannot read the layer \(path): \(message)")
        }
        return reader
    }

    /// `sha256:HEX` of the whole decompressed stream: what the tar reader did not consume (the
    /// zero blocks after the last entry, padding) is read and hashed too.
    func finish() throws(SkiffError) -> String {
        while true {
            let count = next(nil)
            if count == 0 { break }
            if count < 0 { throw SkiffError(.invalidInput, "the layer \(path) is damaged: \(failure ?? "read error")") }
        }
        return "sha256:" + Files.hexadecimal(hasher.finalize())
    }
}

/// libarchive's read callback: the next piece of the decompressed stream.
private func readDecompressed(
    _ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?, _ out: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    guard let context else { return -1 }
    return la_ssize_t(Unmanaged<DecompressedStream>.fromOpaque(context).takeUnretainedValue().next(out))
}

/// The diff id (`sha256:HEX` of the uncompressed bytes) of the layer tar at `path`, plain or
/// compressed, reading every header on the way: a file that is not a tar is refused here, in
/// the one pass that hashes it.
public func layerDiffID(of path: String) throws(SkiffError) -> String {
    let stream = try DecompressedStream(path)
    let reader = try stream.tarReader()
    defer { archive_read_free(reader) }
    var entry: OpaquePointer?
    var entries = 0
    while true {
        let status = archive_read_next_header(reader, &entry)
        if status == ARCHIVE_EOF { break }
        guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
            throw SkiffError(
                .invalidInput,
                "\(path) is not a tar archive, or is damaged after \(entries) entries: \(stream.failure ?? archiveError(reader))")
        }
        entries += 1
        guard archive_read_data_skip(reader) >= ARCHIVE_WARN else {
            throw SkiffError(.invalidInput, "\(path) is damaged after \(entries) entries: \(stream.failure ?? archiveError(reader))")
        }
    }
    return try stream.finish()
}
