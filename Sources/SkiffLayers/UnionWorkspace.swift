@preconcurrency import Glibc
import SkiffKernel

/// The scratch directory of one union: unpacked tar layers, the writable layer (unless the user
/// keeps it elsewhere), the staging mounts and the merged root. Removed after the container.
public struct UnionWorkspace: Sendable {
    /// `$TMPDIR/skiff-NAME-PID`.
    public let root: String
    /// A kept upper directory's work directory, beside it; removed with the workspace.
    private let keptWorkDirectory: String?

    public var merged: String { root + "/merged" }
    public var stage: String { root + "/stage" }

    /// Creates the workspace. Mode 0711: the container's root, an unprivileged uid on the host,
    /// must pass through it to reach the staged layers, but may not list it.
    public init(name: String, upper relativeUpper: String?) throws(SkiffError) {
        // Absolute: the staging mounts and overlayfs's options need whole paths.
        let upper = relativeUpper.map(Files.absolute)
        let temporary = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        root = "\(temporary)/skiff-\(name)-\(getpid())"
        let keptWork = upper.map { "\(parentDirectory(of: $0))/.\(baseName($0)).skiff-work-\(getpid())" }
        keptWorkDirectory = keptWork
        self.upper = upper ?? root + "/rw/upper"
        Self.sweepStale(in: temporary, name: name)
        do {
            try FileTree.remove(root)
            try checked(mkdir(root, 0o711), "mkdir", root)
            try checked(chmod(root, 0o711), "chmod", root)
            try Files.makeDirectories(merged)
            if let upper, let keptWork {
                try Files.makeDirectories(upper)
                try Files.makeDirectories(keptWork)
            } else {
                try Files.makeDirectories(root + "/rw/upper")
                try Files.makeDirectories(root + "/rw/work")
            }
        } catch {
            throw SkiffError(.setupFailed, "cannot prepare the union's workspace \(root)", cause: error)
        }
    }

    /// Where the container writes.
    public let upper: String
    public var work: String { keptWorkDirectory ?? root + "/rw/work" }

    /// A lower layer from `source`: a directory is used in place; a tar or tar.gz file is
    /// unpacked into the workspace with its whiteouts converted.
    public func layer(from source: String, index: Int, opaqueXattr: Whiteout.OpaqueXattr, kernel: Kernel) throws(SkiffError) -> String {
        // The user's own path: following a symlink here is what they asked for.
        guard let info = statFollowing(source) else {
            throw SkiffError(.invalidInput, "layer \(source) does not exist: give a directory or a .tar/.tar.gz layer")
        }
        if FileTree.isDirectory(info) { return source }
        let directory = "\(root)/layers/\(index)"
        let report = try LayerApplier(opaqueXattr: opaqueXattr).apply(source, to: directory)
        kernel.narrator.note(
            "unpacked \(source) into \(directory): entries: \(report.entries), whiteouts: \(report.whiteouts), opaque directories: \(report.opaqueDirectories)"
        )
        return directory
    }

    /// `base` and every layer of `sources` as directories, bottom first.
    public func layers(base: String, sources: [String], opaqueXattr: Whiteout.OpaqueXattr, kernel: Kernel) throws(SkiffError) -> [String] {
        var layers = [base]
        for (index, source) in sources.enumerated() {
            layers.append(try layer(from: source, index: index, opaqueXattr: opaqueXattr, kernel: kernel))
        }
        return layers
    }

    /// Workspaces are named after the process that made them. One whose process is gone was left
    /// by a run killed before it could clean up; its mounts went with that process's private
    /// mount table, so what is left is plain files: remove them.
    static func sweepStale(in directory: String, name: String) {
        for entry in (try? Files.names(in: directory)) ?? [] where entry.hasPrefix("skiff-\(name)-") {
            guard let pid = Int32(entry.dropFirst("skiff-\(name)-".count)), pid != getpid(), !ProcFS().isRunning(pid) else { continue }
            try? FileTree.remove("\(directory)/\(entry)")
        }
    }

    /// Removes everything the workspace made. Call after the staging mounts are gone: removal
    /// stops with an error at any mount point rather than descend into it.
    public func remove() throws(SkiffError) {
        do {
            if let keptWorkDirectory { try FileTree.remove(keptWorkDirectory) }
            try FileTree.remove(root)
        } catch {
            throw SkiffError(.setupFailed, "cannot remove the union's workspace \(root)", cause: error)
        }
    }
}

func statFollowing(_ path: String) -> stat? {
    var info = stat()
    return stat(path, &info) == 0 ? info : nil
}
