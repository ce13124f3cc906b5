import CArchive
@preconcurrency import Glibc
import SkiffKernel

/// Unpacks a layer tar (plain or compressed, read with libarchive) into a directory of its own,
/// ready to be an overlayfs lower layer: `.wh.` entries become whiteouts, `.wh..wh..opq` an
/// opaque xattr.
///
/// A layer is hostile input (DESIGN §9): every entry is checked before anything is written, and
/// an entry that would write outside the directory is refused with its name: `..` components,
/// paths through a symlink, symlinks whose relative target climbs out, hard links that are
/// absolute or point outside, device nodes unless we are root, and paths too long or too deep.
/// Nothing is ever written through a symlink: parents are checked with lstat, files are opened
/// with O_NOFOLLOW and O_EXCL.
public struct LayerApplier {
    public struct Limits: Sendable {
        public var maxEntries = 1_000_000
        public var maxPathBytes = 4096
        public var maxDepth = 256
        public var maxTotalBytes: UInt64 = 64 << 30

        public init() {}
    }

    /// What an apply did, for the narrator and the tests.
    public struct Report: Equatable, Sendable {
        public var entries = 0
        public var whiteouts = 0
        public var opaqueDirectories = 0
        /// `sha256:HEX` of the uncompressed tar: the layer's diff id, computed in the same pass.
        public var diffID = ""
    }

    /// The xattrs an opaque directory gets: one for the overlay that will use the layer, or
    /// both for a layer shared by overlays mounted by root (trusted.*) and in user namespaces
    /// (user.* with userxattr); each overlay reads only its own.
    public let opaqueXattrs: [Whiteout.OpaqueXattr]
    public var limits = Limits()
    /// Owners and device nodes need root; without it files keep our own uid.
    public var asRoot = geteuid() == 0

    public init(opaqueXattr: Whiteout.OpaqueXattr) {
        opaqueXattrs = [opaqueXattr]
    }

    public init(opaqueXattrs: [Whiteout.OpaqueXattr]) {
        self.opaqueXattrs = opaqueXattrs
    }

    /// Applies the layer `archive` into `directory` (created if missing).
    public func apply(_ archive: String, to directory: String) throws(SkiffError) -> Report {
        let stream = try DecompressedStream(archive)
        let reader = try stream.tarReader()
        defer { archive_read_free(reader) }
        do {
            try Files.makeDirectories(directory)
        } catch {
            throw SkiffError(.setupFailed, "cannot create the layer directory \(directory)", cause: error)
        }
        var report = Report()
        var totalBytes: UInt64 = 0
        // Directory times are set last: writing into a directory changes its mtime.
        var directoryTimes: [(String, timespec)] = []
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw SkiffError(
                    .invalidInput,
                    "layer \(archive) is damaged after \(report.entries) entries: \(stream.failure ?? archiveError(reader))")
            }
            report.entries += 1
            guard report.entries <= limits.maxEntries else {
                throw SkiffError(.invalidInput, "layer \(archive) has more than \(limits.maxEntries) entries")
            }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let size = UInt64(max(0, archive_entry_size(entry)))
            totalBytes += size
            guard totalBytes <= limits.maxTotalBytes else {
                throw SkiffError(.invalidInput, "layer \(archive) unpacks to more than \(humanSize(limits.maxTotalBytes))")
            }
            do {
                try applyEntry(entry, name: name, reader: reader, into: directory, report: &report, directoryTimes: &directoryTimes)
            } catch let error as LayerEntryError {
                throw SkiffError(.invalidInput, "layer \(archive): entry \"\(name)\" \(error.reason)")
            } catch let error as SyscallError {
                throw SkiffError(.setupFailed, "layer \(archive): entry \"\(name)\"", cause: error)
            } catch {
                throw SkiffError(.setupFailed, "layer \(archive): entry \"\(name)\": \(error)")
            }
        }
        for (path, time) in directoryTimes.reversed() {
            var times = [time, time]
            utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
        }
        report.diffID = try stream.finish()
        return report
    }

    private func applyEntry(
        _ entry: OpaquePointer, name: String, reader: OpaquePointer, into root: String,
        report: inout Report, directoryTimes: inout [(String, timespec)]
    ) throws {
        let components = try safeComponents(name)
        guard let last = components.last else { return }  // "./": the layer's root itself
        let parent = try prepareParents(components.dropLast(), under: root)
        let type = archive_entry_filetype(entry) & SK_AE_IFMT

        if last == Whiteout.opaqueMarker {
            for xattr in opaqueXattrs { try LinuxSyscalls().perform(.setxattr(parent, name: xattr.rawValue, value: "y")) }
            report.opaqueDirectories += 1
            return
        }
        if last.hasPrefix(Whiteout.prefix) {
            let hidden = String(last.dropFirst(Whiteout.prefix.count))
            guard !hidden.isEmpty, hidden != ".", hidden != ".." else { throw LayerEntryError("is not a valid whiteout") }
            let path = "\(parent)/\(hidden)"
            try replaceExisting(path)
            try checked(mknod(path, S_IFCHR, 0), "mknod whiteout", path)
            try setOwnerAndTime(path, entry)
            report.whiteouts += 1
            return
        }

        let path = "\(parent)/\(last)"
        let mode = mode_t(archive_entry_perm(entry))
        if let target = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
            let targetComponents = try safeComponents(target, hardLink: true)
            let targetPath = try prepareParents(targetComponents.dropLast(), under: root, create: false) + "/" + targetComponents.last!
            guard let info = FileTree.lstatInfo(targetPath), !FileTree.isDirectory(info) else {
                throw LayerEntryError("is a hard link to \"\(target)\", which is not a file earlier in this layer")
            }
            try replaceExisting(path)
            try checked(link(targetPath, path), "link", path)
            return
        }
        switch type {
        case SK_AE_IFDIR:
            if let info = FileTree.lstatInfo(path), !FileTree.isDirectory(info) { try replaceExisting(path) }
            if FileTree.lstatInfo(path) == nil { try checked(mkdir(path, 0o700), "mkdir", path) }
            try setOwnerAndTime(path, entry)
            try checked(chmod(path, mode), "chmod", path)
            directoryTimes.append((path, modificationTime(entry)))
        case SK_AE_IFREG:
            try replaceExisting(path)
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            try checked(fd, "create", path)
            defer { close(fd) }
            try copyData(from: reader, to: fd, path: path)
            try setOwnerAndTime(path, entry)
            // After chown, which clears set-id bits.
            try checked(fchmod(fd, mode), "chmod", path)
        case SK_AE_IFLNK:
            let target = archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
            try checkSymlinkTarget(target, depth: components.count - 1)
            try replaceExisting(path)
            try checked(symlink(target, path), "symlink", path)
            try setOwnerAndTime(path, entry)
        case SK_AE_IFCHR, SK_AE_IFBLK:
            guard asRoot else { throw LayerEntryError("is a device node, which only root may create") }
            try replaceExisting(path)
            let device = Files.deviceNumber(major: UInt32(archive_entry_rdevmajor(entry)), minor: UInt32(archive_entry_rdevminor(entry)))
            try checked(mknod(path, (type == SK_AE_IFCHR ? S_IFCHR : S_IFBLK) | mode, device), "mknod", path)
            try setOwnerAndTime(path, entry)
        case SK_AE_IFIFO:
            try replaceExisting(path)
            try checked(mkfifo(path, mode), "mkfifo", path)
            try setOwnerAndTime(path, entry)
        default:
            throw LayerEntryError("has a file type a layer cannot carry (\(String(type, radix: 8)))")
        }
        try applyXattrs(entry, to: path)
    }

    /// The path's components, refusing what could climb out or exhaust us.
    private func safeComponents(_ name: String, hardLink: Bool = false) throws -> [String] {
        guard name.utf8.count <= limits.maxPathBytes else { throw LayerEntryError("is longer than \(limits.maxPathBytes) bytes") }
        if hardLink && name.hasPrefix("/") { throw LayerEntryError("is an absolute hard link (\(name)), which would point at the host") }
        let components = name.split(separator: "/").map(String.init).filter { $0 != "." }
        guard !components.contains("..") else { throw LayerEntryError("has a '..' component, which would climb out of the layer") }
        guard components.count <= limits.maxDepth else { throw LayerEntryError("is more than \(limits.maxDepth) directories deep") }
        if let marker = components.dropLast().first(where: { $0.hasPrefix(Whiteout.prefix) }) {
            throw LayerEntryError("has the whiteout name \(marker) as a directory")
        }
        return components
    }

    /// Makes the parents of an entry (as root-owned 0755 directories when the layer did not list
    /// them), refusing any that is a symlink or not a directory. Returns the parent's path.
    private func prepareParents(_ components: ArraySlice<String>, under root: String, create: Bool = true) throws -> String {
        var path = root
        for component in components {
            path += "/\(component)"
            if let info = FileTree.lstatInfo(path) {
                if info.st_mode & S_IFMT == S_IFLNK { throw LayerEntryError("goes through the symlink \(component)") }
                guard FileTree.isDirectory(info) else { throw LayerEntryError("goes through \(component), which is not a directory") }
            } else if create {
                try checked(mkdir(path, 0o755), "mkdir", path)
            } else {
                throw LayerEntryError("refers to \(component), which is not earlier in this layer")
            }
        }
        return path
    }

    /// A relative target may go up only as far as the layer's root: `../x` from `a/b/link` is
    /// fine, `../../../x` is not. Absolute targets resolve inside the container's root when the
    /// container follows them, and Skiff itself never follows a link while unpacking.
    private func checkSymlinkTarget(_ target: String, depth: Int) throws {
        guard !target.isEmpty else { throw LayerEntryError("is a symlink with an empty target") }
        guard !target.hasPrefix("/") else { return }
        var level = depth
        for component in target.split(separator: "/") {
            if component == ".." { level -= 1 } else if component != "." { level += 1 }
            if level < 0 { throw LayerEntryError("is a symlink to \(target), which escapes the layer") }
        }
    }

    /// A later entry of the same name replaces an earlier one, as tar does.
    private func replaceExisting(_ path: String) throws {
        guard let info = FileTree.lstatInfo(path) else { return }
        if FileTree.isDirectory(info) {
            try FileTree.remove(path)
        } else {
            try checked(unlink(path), "unlink", path)
        }
    }

    private func copyData(from reader: OpaquePointer, to fd: Int32, path: String) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(reader, $0.baseAddress, $0.count) }
            if count == 0 { return }
            if count < 0 { throw LayerEntryError("cannot be read: \(archiveError(reader))") }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SyscallError("write", path: path)
                }
                offset += written
            }
        }
    }

    private func setOwnerAndTime(_ path: String, _ entry: OpaquePointer) throws {
        if asRoot {
            try checked(lchown(path, uid_t(archive_entry_uid(entry)), gid_t(archive_entry_gid(entry))), "lchown", path)
        }
        var times = [modificationTime(entry), modificationTime(entry)]
        try checked(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW), "utimensat", path)
    }

    private func modificationTime(_ entry: OpaquePointer) -> timespec {
        timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: archive_entry_mtime_nsec(entry))
    }

    /// Extended attributes (pax SCHILY.xattr.*), such as security.capability; never overlayfs's own.
    private func applyXattrs(_ entry: OpaquePointer, to path: String) throws {
        guard archive_entry_xattr_reset(entry) > 0 else { return }
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK {
            guard let name, let value else { continue }
            let key = String(cString: name)
            if Whiteout.isOverlayXattr(key) { throw LayerEntryError("carries the xattr \(key), which only overlayfs may set") }
            guard asRoot || key.hasPrefix("user.") else { continue }
            let text = String(decoding: UnsafeRawBufferPointer(start: value, count: size), as: UTF8.self)
            try LinuxSyscalls().perform(.setxattr(path, name: key, value: text))
        }
    }
}

struct LayerEntryError: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

func checked(_ result: Int32, _ operation: String, _ path: String) throws(SyscallError) {
    if result == -1 { throw SyscallError(operation, path: path) }
}

/// A libarchive reader of the tar at `path`, plain or compressed (any filter libarchive knows);
/// the caller frees it with archive_read_free. `label` says what the file is in errors
/// ("the layer", "the archive"; empty for just the path).
public func openTarReader(_ path: String, label: String) throws(SkiffError) -> OpaquePointer {
    guard let reader = archive_read_new() else { throw SkiffError(.setupFailed, "libarchive: cannot allocate a reader") }
    archive_read_support_filter_all(reader)
    archive_read_support_format_tar(reader)
    guard archive_read_open_filename(reader, path, 65536) == ARCHIVE_OK else {
        let message = archiveError(reader)
        archive_read_free(reader)
        throw SkiffError(.invalidInput, "cannot read \(label.isEmpty ? "" : label + " ")\(path): \(message)")
    }
    return reader
}

/// libarchive's message for the last error on `archive`.
public func archiveError(_ archive: OpaquePointer) -> String {
    archive_error_string(archive).map { String(cString: $0) } ?? "unknown libarchive error"
}

func humanSize(_ bytes: UInt64) -> String { bytes >= 1 << 30 ? "\(bytes >> 30) GiB" : "\(bytes >> 20) MiB" }
