import CArchive
import Crypto
@preconcurrency import Glibc
import SkiffKernel
import SkiffLayers

/// Tar files that carry images (`docker save` archives, OCI layouts as tars), read and written
/// with libarchive. An archive someone hands us is hostile input (DESIGN §9): it is unpacked into
/// a fresh staging directory of our own, member by member, refusing absolute names, `..`,
/// device nodes and links that leave the archive, within bounds on entries and bytes. Symlinks
/// are never created: `docker save` (before 25) writes a repeated layer as a symlink to the first
/// copy, so a symlink whose target stays inside the archive becomes a hard link to that file.
public enum ImageArchive {
    public struct Limits: Sendable {
        public var maxEntries = 100_000
        public var maxTotalBytes: UInt64 = 64 << 30
        public var maxPathBytes = 4096

        public init() {}
    }

    /// Unpacks the archive at `path` into `directory`, which is made if missing and should be
    /// new and empty: a fresh staging directory of the caller's.
    public static func extract(_ path: String, to directory: String, limits: Limits = Limits()) throws(SkiffError) {
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw SkiffError(.setupFailed, "cannot unpack \(path)", cause: SyscallError("mkdir", path: directory))
        }
        let reader = try openTarReader(path, label: "the archive")
        defer { archive_read_free(reader) }
        var entries = 0
        var totalBytes: UInt64 = 0
        var symlinks: [(name: String, target: String)] = []
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw SkiffError(
                    .invalidInput, "\(path) is not a tar archive, or is damaged after \(entries) entries: \(archiveError(reader))")
            }
            entries += 1
            guard entries <= limits.maxEntries else {
                throw SkiffError(.invalidInput, "archive \(path) has more than \(limits.maxEntries) entries")
            }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            totalBytes += UInt64(max(0, archive_entry_size(entry)))
            guard totalBytes <= limits.maxTotalBytes else {
                throw SkiffError(.invalidInput, "archive \(path) holds more than \(limits.maxTotalBytes >> 20) MiB")
            }
            let components = try memberComponents(name, in: path, limits: limits)
            guard !components.isEmpty else { continue }  // "./"
            let target = "\(directory)/\(components.joined(separator: "/"))"
            try makeParents(of: components, under: directory)
            if let hardLink = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
                let source = "\(directory)/\(try memberComponents(hardLink, in: path, limits: limits).joined(separator: "/"))"
                unlink(target)
                guard link(source, target) == 0 else {
                    throw SkiffError(
                        .invalidInput, "archive \(path): \"\(name)\" is a hard link to \"\(hardLink)\", which is not earlier in it")
                }
                continue
            }
            switch archive_entry_filetype(entry) & SK_AE_IFMT {
            case SK_AE_IFDIR:
                guard mkdir(target, 0o755) == 0 || errno == EEXIST else {
                    throw SkiffError(.setupFailed, "cannot unpack \(path)", cause: SyscallError("mkdir", path: target))
                }
            case SK_AE_IFREG:
                try copyMember(reader, to: target, archive: path)
            case SK_AE_IFLNK:
                symlinks.append((components.joined(separator: "/"), archive_entry_symlink(entry).map { String(cString: $0) } ?? ""))
            default:
                throw SkiffError(
                    .invalidInput, "archive \(path): \"\(name)\" is not a file, directory or link; an image archive holds none")
            }
        }
        try resolve(symlinks, in: directory, archive: path)
    }

    /// The components of a member's name; absolute names and `..` are refused, never cleaned up,
    /// because a tool that wrote them meant something we must not do.
    static func memberComponents(_ name: String, in archive: String, limits: Limits = Limits()) throws(SkiffError) -> [String] {
        guard name.utf8.count <= limits.maxPathBytes, !name.hasPrefix("/") else {
            throw SkiffError(.invalidInput, "archive \(archive): member \"\(name)\" has an absolute or overlong name; refused")
        }
        let components = name.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !components.contains("..") else {
            throw SkiffError(.invalidInput, "archive \(archive): member \"\(name)\" has a '..' component, which would climb out; refused")
        }
        return components
    }

    private static func makeParents(of components: [String], under directory: String) throws(SkiffError) {
        var path = directory
        for component in components.dropLast() {
            path += "/\(component)"
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw SkiffError(.invalidInput, "archive member \(components.joined(separator: "/")) is below a file, not a directory")
                }
            } else if mkdir(path, 0o755) != 0 {
                throw SkiffError(.setupFailed, "cannot unpack an archive", cause: SyscallError("mkdir", path: path))
            }
        }
    }

    private static func copyMember(_ reader: OpaquePointer, to target: String, archive: String) throws(SkiffError) {
        unlink(target)  // a later member of the same name replaces an earlier one, as tar does
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SkiffError(.setupFailed, "cannot unpack \(archive)", cause: SyscallError("open", path: target)) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(reader, $0.baseAddress, $0.count) }
            if count == 0 { return }
            guard count > 0 else { throw SkiffError(.invalidInput, "archive \(archive) is damaged: \(archiveError(reader))") }
            let failure = buffer.withUnsafeBytes { bytes -> SkiffError? in
                do throws(SkiffError) {
                    try writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[..<count]), path: target)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { throw failure }
        }
    }

    /// Symlinks whose target, read relative to the link's directory, names a file of the
    /// archive become hard links to it; those that leave the archive are refused.
    private static func resolve(_ symlinks: [(name: String, target: String)], in directory: String, archive: String) throws(SkiffError) {
        let targets = Dictionary(symlinks.map { ($0.name, $0.target) }, uniquingKeysWith: { $1 })
        for (name, _) in symlinks {
            var current = name
            var hops = 0
            while let target = targets[current] {
                hops += 1
                guard hops <= 16, !target.hasPrefix("/") else {
                    throw SkiffError(.invalidInput, "archive \(archive): symlink \"\(name)\" points outside the archive; refused")
                }
                var resolved = current.split(separator: "/").dropLast().map(String.init)
                for component in target.split(separator: "/") where component != "." {
                    if component == ".." {
                        guard !resolved.isEmpty else {
                            throw SkiffError(.invalidInput, "archive \(archive): symlink \"\(name)\" points outside the archive; refused")
                        }
                        resolved.removeLast()
                    } else {
                        resolved.append(String(component))
                    }
                }
                current = resolved.joined(separator: "/")
            }
            var info = stat()
            guard lstat("\(directory)/\(current)", &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            guard link("\(directory)/\(current)", "\(directory)/\(name)") == 0 else {
                throw SkiffError(.setupFailed, "cannot unpack \(archive)", cause: SyscallError("link", path: "\(directory)/\(name)"))
            }
        }
    }

    /// One file of an archive being written: its name and where its bytes come from.
    public struct Member: Sendable {
        public enum Content: Sendable {
            case bytes([UInt8])
            case file(String)
        }

        public let name: String
        public let content: Content

        public init(_ name: String, _ content: Content) {
            self.name = name
            self.content = content
        }
    }

    /// Writes `members` as a tar at `path` (through a temporary file, renamed when complete),
    /// reproducibly: owned by 0:0, every time the epoch, parent directories listed first.
    public static func writeTar(_ members: [Member], to path: String) throws(SkiffError) {
        try replacing(path) { temporary in try writeTar(members, temporary: temporary) }
    }

    /// Runs `write` on a temporary file beside `path`, then renames it into place: a reader (or
    /// a crash) sees no file or the whole one. On failure the temporary file is removed.
    static func replacing(_ path: String, _ write: (String) throws -> Void) throws(SkiffError) {
        let temporary = "\(path).skiff-\(getpid())"
        do {
            try write(temporary)
            guard rename(temporary, path) == 0 else { throw SyscallError("rename", path: path) }
        } catch let error as SkiffError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw SkiffError(.setupFailed, "cannot write \(path)", cause: error)
        }
    }

    private static func writeTar(_ members: [Member], temporary: String) throws {
        guard let writer = archive_write_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a writer") }
        defer { archive_write_free(writer) }
        archive_write_set_format_pax_restricted(writer)
        archive_write_add_filter_none(writer)
        guard archive_write_open_filename(writer, temporary) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot create \(temporary): \(archiveError(writer))")
        }
        var directories: Set<String> = []
        for member in members {
            var parent = ""
            for component in member.name.split(separator: "/").dropLast() {
                parent += "\(component)/"
                if directories.insert(parent).inserted { try writeHeader(writer, name: parent, directory: true, size: 0) }
            }
            switch member.content {
            case .bytes(let bytes):
                try writeHeader(writer, name: member.name, directory: false, size: Int64(bytes.count))
                guard bytes.isEmpty || bytes.withUnsafeBytes({ archive_write_data(writer, $0.baseAddress, $0.count) }) == bytes.count else {
                    throw SkiffError(.setupFailed, "cannot write \(member.name): \(archiveError(writer))")
                }
            case .file(let source):
                var info = stat()
                guard stat(source, &info) == 0 else { throw SyscallError("stat", path: source) }
                try writeHeader(writer, name: member.name, directory: false, size: Int64(info.st_size))
                try appendFileData(source, to: writer, label: temporary)
            }
        }
        guard archive_write_close(writer) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot finish \(temporary): \(archiveError(writer))")
        }
    }

    private static func writeHeader(_ writer: OpaquePointer, name: String, directory: Bool, size: Int64) throws {
        guard let entry = archive_entry_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate an entry") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, directory ? SK_AE_IFDIR : SK_AE_IFREG)
        archive_entry_set_perm(entry, directory ? 0o755 : 0o644)
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, 0, 0)
        guard archive_write_header(writer, entry) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot add \(name) to the archive: \(archiveError(writer))")
        }
    }

    /// Writes the filesystem that the layer tars `layers` (bottom first) make when stacked, as one
    /// plain tar without whiteouts: what `docker export` gives, and what `import` takes back.
    /// Layers are read top first; an entry is written unless a layer above wrote the same path,
    /// deleted it or a parent (`.wh.NAME`), or made a parent opaque (`.wh..wh..opq`), as
    /// overlayfs would show it (OCI image spec, layer.md, "Whiteouts").
    public static func flatten(layers: [String], to output: String) throws(SkiffError) {
        try replacing(output) { temporary in try flatten(layers: layers, temporary: temporary) }
    }

    private static func flatten(layers: [String], temporary: String) throws {
        guard let writer = archive_write_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a writer") }
        defer { archive_write_free(writer) }
        archive_write_set_format_pax_restricted(writer)
        archive_write_add_filter_none(writer)
        guard archive_write_open_filename(writer, temporary) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot create \(temporary): \(archiveError(writer))")
        }
        var writtenBy: [String: Int] = [:]  // path -> the layer whose entry was written
        var deleted: Set<String> = []  // hidden with everything below
        var opaque: Set<String> = []  // everything below hidden, the directory itself kept
        for (index, layer) in layers.enumerated().reversed() {
            var deletedHere: [String] = []
            var opaqueHere: [String] = []
            try forEachEntry(of: layer) { reader, entry, components throws in
                let path = components.joined(separator: "/")
                let parent = components.dropLast().joined(separator: "/")
                let name = components.last!
                if name == Whiteout.opaqueMarker {
                    opaqueHere.append(parent)
                    return
                }
                if name.hasPrefix(Whiteout.prefix) {
                    deletedHere.append((parent.isEmpty ? "" : parent + "/") + name.dropFirst(Whiteout.prefix.count))
                    return
                }
                var prefix = ""
                for (depth, component) in components.enumerated() {
                    prefix += (depth == 0 ? "" : "/") + component
                    if deleted.contains(prefix) || (depth < components.count - 1 && opaque.contains(prefix)) { return }
                }
                guard writtenBy[path] == nil else { return }
                if let target = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
                    // The link's target must be this layer's own file, not an upper layer's.
                    let targetPath = try memberComponents(target, in: layer).joined(separator: "/")
                    guard writtenBy[targetPath] == index else {
                        throw SkiffError(
                            .invalidInput, "cannot flatten \(layer): hard link \(path) to \(target), which a layer above replaced")
                    }
                    archive_entry_set_hardlink(entry, targetPath)
                }
                writtenBy[path] = index
                archive_entry_set_pathname(entry, path + (archive_entry_filetype(entry) & SK_AE_IFMT == SK_AE_IFDIR ? "/" : ""))
                guard archive_write_header(writer, entry) == ARCHIVE_OK else {
                    throw SkiffError(.setupFailed, "cannot write \(path): \(archiveError(writer))")
                }
                var buffer = [UInt8](repeating: 0, count: 1 << 16)
                while true {
                    let count = buffer.withUnsafeMutableBytes { archive_read_data(reader, $0.baseAddress, $0.count) }
                    if count == 0 { break }
                    guard count > 0 else { throw SkiffError(.invalidInput, "layer \(layer) is damaged: \(archiveError(reader))") }
                    guard buffer.withUnsafeBytes({ archive_write_data(writer, $0.baseAddress, count) }) == count else {
                        throw SkiffError(.setupFailed, "cannot write \(path): \(archiveError(writer))")
                    }
                }
            }
            deleted.formUnion(deletedHere)
            opaque.formUnion(opaqueHere)
        }
        guard archive_write_close(writer) == ARCHIVE_OK else {
            throw SkiffError(.setupFailed, "cannot finish \(temporary): \(archiveError(writer))")
        }
    }

    /// Calls `body` with each entry of the layer tar at `path` and its checked name components;
    /// the layer's root (`./`) is skipped.
    private static func forEachEntry(
        of path: String, _ body: (_ reader: OpaquePointer, _ entry: OpaquePointer, _ components: [String]) throws -> Void
    ) throws {
        let reader = try openTarReader(path, label: "the layer")
        defer { archive_read_free(reader) }
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw SkiffError(.invalidInput, "layer \(path) is damaged: \(archiveError(reader))")
            }
            let components = try memberComponents(archive_entry_pathname(entry).map { String(cString: $0) } ?? "", in: path)
            if !components.isEmpty { try body(reader, entry, components) }
        }
    }

    /// The compression a layer blob starts with, by its magic bytes (RFC 1952 for gzip, RFC 8878
    /// for zstd), and the media type that says so.
    public static func layerMediaType(of path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return MediaType.ociLayer }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        let count = magic.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4) }
        if count >= 2 && magic[0] == 0x1f && magic[1] == 0x8b { return MediaType.ociLayerGzip }
        if count == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] { return MediaType.ociLayerZstd }
        return MediaType.ociLayer
    }

    /// The sha256 of a layer's uncompressed bytes: its diff id (config.md, rootfs.diff_ids). The
    /// tar's headers are read in the same pass, so a file that is not a tar is refused.
    public static func diffID(of path: String) throws(SkiffError) -> Digest {
        try Digest(layerDiffID(of: path))
    }
}

func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SkiffError) {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            throw SkiffError(.setupFailed, "cannot write \(path)", cause: SyscallError("write", path: path))
        }
        offset += written
    }
}
