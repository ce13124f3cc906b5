import CArchive
import Crypto
@preconcurrency import Glibc
import SkiffKernel

/// A layer tar made from an overlayfs upper directory, and its two digests (OCI image spec,
/// image-layout and config): `diffID` is the sha256 of the uncompressed tar, which an image's
/// config lists; `digest` is the sha256 of the bytes as stored (the gzip), which a manifest lists.
public struct LayerFile: Equatable, Sendable {
    public let path: String
    public let diffID: String
    public let digest: String
    public let size: UInt64
}

/// Writes an upper directory as an OCI layer: whiteouts (0/0 devices) become `.wh.NAME` files and
/// opaque directories get a `.wh..wh..opq` entry. The output is reproducible: entries in bytewise
/// order, times in whole seconds, no user or group names, no gzip timestamp, so the same tree
/// always gives the same digests.
public enum LayerCreator {
    public static func create(from upper: String, to output: String) throws(SkiffError) -> LayerFile {
        let compressed = output.hasSuffix(".gz") || output.hasSuffix(".tgz")
        let tarPath = compressed ? output + ".tar-\(getpid())" : output
        defer { if compressed { unlink(tarPath) } }
        do {
            try writeTar(of: upper, to: tarPath)
            if compressed { try gzip(tarPath, to: output) }
            let diffID = try sha256(of: tarPath)
            let digest = compressed ? try sha256(of: output) : diffID
            var info = stat()
            stat(output, &info)
            return LayerFile(path: output, diffID: diffID, digest: digest, size: UInt64(info.st_size))
        } catch let error as SkiffError {
            unlink(output)
            throw error
        } catch {
            unlink(output)
            throw SkiffError(.setupFailed, "cannot write the layer \(output)", cause: error)
        }
    }

    private static func writeTar(of upper: String, to path: String) throws {
        guard let writer = archive_write_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a writer") }
        defer { archive_write_free(writer) }
        // pax, restricted: plain ustar headers unless a field needs an extension (long names).
        archive_write_set_format_pax_restricted(writer)
        archive_write_add_filter_none(writer)
        guard archive_write_open_filename(writer, path) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot create \(path): \(archiveError(writer))")
        }
        var hardLinks: [String: String] = [:]  // "device:inode" -> first path written
        try addDirectory(upper, relative: "", writer: writer, hardLinks: &hardLinks)
        guard archive_write_close(writer) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot finish \(path): \(archiveError(writer))")
        }
    }

    private static func addDirectory(_ directory: String, relative: String, writer: OpaquePointer, hardLinks: inout [String: String]) throws
    {
        for name in try Files.names(in: directory) {
            let path = "\(directory)/\(name)"
            let entryName = relative.isEmpty ? name : "\(relative)/\(name)"
            guard let info = FileTree.lstatInfo(path) else { continue }
            if Whiteout.isWhiteout(info) {
                try writeEntry(
                    writer, name: parentPrefix(relative) + Whiteout.prefix + name, info: info, type: SK_AE_IFREG, mode: 0, size: 0)
                continue
            }
            let type = info.st_mode & S_IFMT
            let key = "\(info.st_dev):\(info.st_ino)"
            if type != S_IFDIR, info.st_nlink > 1, let first = hardLinks[key] {
                try writeEntry(
                    writer, name: entryName, info: info, type: SK_AE_IFREG, mode: info.st_mode & 0o7777, size: 0, hardLink: first)
                continue
            }
            if type != S_IFDIR, info.st_nlink > 1 { hardLinks[key] = entryName }
            switch type {
            case S_IFDIR:
                try writeEntry(
                    writer, name: entryName + "/", info: info, type: SK_AE_IFDIR, mode: info.st_mode & 0o7777, size: 0, xattrsOf: path)
                if Whiteout.isOpaque(path) {
                    try writeEntry(writer, name: "\(entryName)/\(Whiteout.opaqueMarker)", info: info, type: SK_AE_IFREG, mode: 0, size: 0)
                }
                try addDirectory(path, relative: entryName, writer: writer, hardLinks: &hardLinks)
            case S_IFREG:
                try writeEntry(
                    writer, name: entryName, info: info, type: SK_AE_IFREG, mode: info.st_mode & 0o7777, size: Int64(info.st_size),
                    xattrsOf: path, contentsOf: path)
            case S_IFLNK:
                var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlink(path, &target, target.count - 1)
                try checked(Int32(length < 0 ? -1 : 0), "readlink", path)
                let text = String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                try writeEntry(writer, name: entryName, info: info, type: SK_AE_IFLNK, mode: info.st_mode & 0o7777, size: 0, symlink: text)
            case S_IFCHR, S_IFBLK:
                try writeEntry(
                    writer, name: entryName, info: info, type: type == S_IFCHR ? SK_AE_IFCHR : SK_AE_IFBLK, mode: info.st_mode & 0o7777,
                    size: 0)
            case S_IFIFO:
                try writeEntry(writer, name: entryName, info: info, type: SK_AE_IFIFO, mode: info.st_mode & 0o7777, size: 0)
            default:
                continue  // sockets do not belong in a layer
            }
        }
    }

    private static func parentPrefix(_ relative: String) -> String { relative.isEmpty ? "" : relative + "/" }

    private static func writeEntry(
        _ writer: OpaquePointer, name: String, info: stat, type: UInt32, mode: UInt32, size: Int64,
        hardLink: String? = nil, symlink: String? = nil, xattrsOf xattrPath: String? = nil, contentsOf contentPath: String? = nil
    ) throws {
        guard let entry = archive_entry_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate an entry") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, type)
        archive_entry_set_perm(entry, mode)
        archive_entry_set_uid(entry, Int64(info.st_uid))
        archive_entry_set_gid(entry, Int64(info.st_gid))
        archive_entry_set_mtime(entry, info.st_mtim.tv_sec, 0)
        archive_entry_set_size(entry, size)
        if let hardLink { archive_entry_set_hardlink(entry, hardLink) }
        if let symlink { archive_entry_set_symlink(entry, symlink) }
        if type == SK_AE_IFCHR || type == SK_AE_IFBLK {
            let device = Files.majorMinor(info.st_rdev)
            archive_entry_set_rdevmajor(entry, dev_t(device.major))
            archive_entry_set_rdevminor(entry, dev_t(device.minor))
        }
        if let xattrPath { addXattrs(of: xattrPath, to: entry) }
        guard archive_write_header(writer, entry) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot add \(name) to the layer: \(archiveError(writer))")
        }
        if let contentPath, size > 0 { try appendFileData(contentPath, to: writer, label: "the layer") }
    }

    /// Extended attributes other than overlayfs's own (security.capability, user.*), sorted.
    private static func addXattrs(of path: String, to entry: OpaquePointer) {
        for name in Files.xattrNames(path).sorted() where !Whiteout.isOverlayXattr(name) {
            guard let value = Files.xattr(path, name) else { continue }
            let bytes = Array(value.utf8)
            bytes.withUnsafeBytes { archive_entry_xattr_add_entry(entry, name, $0.baseAddress, $0.count) }
        }
    }

    /// gzip through libarchive's raw format: one stream, no name, no timestamp.
    private static func gzip(_ input: String, to output: String) throws {
        guard let writer = archive_write_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a writer") }
        defer { archive_write_free(writer) }
        archive_write_set_format_raw(writer)
        archive_write_add_filter_gzip(writer)
        archive_write_set_filter_option(writer, "gzip", "timestamp", nil)
        guard archive_write_open_filename(writer, output) == ARCHIVE_OK, let entry = archive_entry_new() else {
            throw SkiffError(.setupFailed, "cannot create \(output): \(archiveError(writer))")
        }
        defer { archive_entry_free(entry) }
        archive_entry_set_filetype(entry, SK_AE_IFREG)
        archive_write_header(writer, entry)
        try appendFileData(input, to: writer, label: output)
        guard archive_write_close(writer) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot finish \(output): \(archiveError(writer))")
        }
    }
}

/// Writes the bytes of the file at `path` (never through a symlink) as the data of the archive
/// entry whose header `writer` has just written; `label` names the archive in errors.
public func appendFileData(_ path: String, to writer: OpaquePointer, label: String) throws {
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    try checked(fd, "open", path)
    defer { close(fd) }
    try Files.forEachChunk(of: fd, path: path) { chunk in
        guard archive_write_data(writer, chunk.baseAddress, chunk.count) == chunk.count else {
            throw SkiffError(.setupFailed, "cannot write \(path) into \(label): \(archiveError(writer))")
        }
    }
}

/// `sha256:` and the hex sha256 of a file's bytes.
public func sha256(of path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    try checked(fd, "open", path)
    defer { close(fd) }
    var hasher = SHA256()
    try Files.forEachChunk(of: fd, path: path) { hasher.update(bufferPointer: $0) }
    return "sha256:" + Files.hexadecimal(hasher.finalize())
}
