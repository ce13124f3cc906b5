@preconcurrency import Glibc
import SkiffKernel

/// How a layer says "this file is gone" and "this directory replaces the one below".
///
/// Two forms exist. In a layer tar (AUFS's convention, kept by Docker and the OCI image spec):
/// an empty file `.wh.NAME` deletes NAME from the layers below, and `.wh..wh..opq` inside a
/// directory makes it opaque, hiding everything below it. In an overlayfs directory (the kernel's
/// overlayfs.rst): a character device 0/0 named NAME deletes it, and the xattr
/// `trusted.overlay.opaque` = `y` marks an opaque directory, or `user.overlay.opaque` when the
/// overlay is mounted in a user namespace with `userxattr` (trusted.* needs CAP_SYS_ADMIN on the
/// host). Applying a tar turns the first form into the second; creating a layer turns it back.
public enum Whiteout {
    public static let prefix = ".wh."
    public static let opaqueMarker = ".wh..wh..opq"

    /// Which xattr carries the opaque mark in overlay form.
    public enum OpaqueXattr: String, Sendable, CaseIterable {
        case trusted = "trusted.overlay.opaque"
        case user = "user.overlay.opaque"
    }

    /// True if `info` is overlayfs's whiteout: a character device with device number 0/0.
    public static func isWhiteout(_ info: stat) -> Bool {
        info.st_mode & S_IFMT == S_IFCHR && info.st_rdev == 0
    }

    /// True if the directory at `path` carries either opaque xattr.
    public static func isOpaque(_ path: String) -> Bool {
        OpaqueXattr.allCases.contains { Files.xattr(path, $0.rawValue) == "y" }
    }

    /// True for xattrs that only overlayfs may set: a layer must not forge them.
    static func isOverlayXattr(_ name: String) -> Bool {
        name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.")
    }
}
