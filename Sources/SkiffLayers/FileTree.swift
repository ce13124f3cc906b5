@preconcurrency import Glibc
import SkiffKernel

/// Small, symlink-safe file-tree helpers: nothing here follows a symlink.
public enum FileTree {
    public static func lstatInfo(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    public static func isDirectory(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFDIR }

    /// Removes `path` and everything below it, never following symlinks and never leaving the
    /// filesystem `path` is on: a mount point below is an error, not something to empty.
    public static func remove(_ path: String) throws(SyscallError) {
        guard let root = lstatInfo(path) else { return }
        try remove(path, info: root, device: root.st_dev)
    }

    private static func remove(_ path: String, info: stat, device: dev_t) throws(SyscallError) {
        guard isDirectory(info) else {
            if unlink(path) != 0 && errno != ENOENT { throw SyscallError("unlink", path: path) }
            return
        }
        guard info.st_dev == device else { throw SyscallError("remove: another filesystem is mounted at", path: path, errno: EBUSY) }
        for name in try Files.names(in: path) {
            let child = "\(path)/\(name)"
            if let childInfo = lstatInfo(child) { try remove(child, info: childInfo, device: device) }
        }
        if rmdir(path) != 0 && errno != ENOENT { throw SyscallError("rmdir", path: path) }
    }
}
