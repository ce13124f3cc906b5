import Foundation
import SkiffImage
import SkiffKernel
import SkiffLayers
import SkiffRootfs
import SkiffRuntime

/// The directory of one container made from an image, under the engine's root: the writable
/// layer, the init layer and the OCI bundle, whose root is the image's layers under the
/// writable one (overlayfs), mounted in the monitor's own mount table so that the mount goes
/// away with the monitor however it ends. Made anew or found again (`skiff start`).
public struct ImageContainer {
    public let id: String
    public let directory: String
    let root: String
    let kernel: Kernel

    /// Makes the container's directory under `root`/containers.
    public init(root: String, id: String = ImageContainer.newID(), kernel: Kernel = Kernel()) throws(SkiffError) {
        self.id = id
        self.root = root
        directory = "\(root)/containers/\(id)"
        self.kernel = kernel
        do {
            try Files.makeDirectories(directory + "/rw/upper")
            try Files.makeDirectories(directory + "/rw/work")
            try Files.makeDirectories(directory + "/bundle/rootfs")
        } catch {
            throw SkiffError(.setupFailed, "cannot create the container directory \(directory)", cause: error)
        }
    }

    /// 64 hex digits, as Docker's container ids.
    public static func newID() -> String {
        // The system generator reads getrandom(2).
        return Files.hexadecimal((0..<32).map { _ in UInt8.random(in: 0...255) })
    }

    public var rootfs: String { directory + "/bundle/rootfs" }
    public var bundle: String { Self.bundle(root: root, id: id) }

    /// The OCI bundle of container `id` under the engine's `root`.
    public static func bundle(root: String, id: String) -> String { "\(root)/containers/\(id)/bundle" }

    /// Mounts the image's `layers` (directories, bottom first) with the init layer and the
    /// writable layer at `rootfs`. Call `Mounts.isolateThisProcess` first: the mount then lives
    /// only in this process's mount table and in the container's copy of it.
    public func mountRootfs(layers: [String], hostname: String) throws(SkiffError) -> InitLayer {
        let initLayer = try InitLayer(in: directory + "/init", hostname: hostname, address: nil, nameservers: nil, owner: 0)
        let stack = LayerStack(lowers: layers + [initLayer.layer], upper: directory + "/rw/upper", work: directory + "/rw/work")
        try stack.mount(at: rootfs, inUserNamespace: false, kernel: kernel)
        do {
            try initLayer.bindFiles(into: rootfs, kernel: kernel)
        } catch {
            throw SkiffError(.setupFailed, "cannot bind the init layer's files into \(rootfs)", cause: error)
        }
        return initLayer
    }

    /// The file `path` of the container's root (e.g. /etc/passwd), or "" when it is missing or
    /// is a symlink: an image's files are not followed out of its root.
    public func readRootfsFile(_ path: String) -> String {
        let fd = open(rootfs + path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        return String(decoding: Files.contents(of: fd), as: UTF8.self)
    }

    /// Writes the bundle's config.json.
    public func writeSpec(_ spec: Spec) throws(SkiffError) {
        do {
            try Files.writeAtomically(bundle + "/config.json", Array(try JSONEncoder().encode(spec)), mode: 0o600)
        } catch {
            throw SkiffError(.setupFailed, "cannot write \(bundle)/config.json", cause: error)
        }
    }

    /// Unmounts the root and removes the directory with the writable layer.
    public func remove() throws(SkiffError) {
        // A lazy unmount detaches the mounts beneath it too: the init layer's file binds.
        try? kernel.run(.umount(rootfs, detach: true), why: "the container's root goes with it")
        do {
            try FileTree.remove(directory)
        } catch {
            throw SkiffError(.setupFailed, "cannot remove the container directory \(directory)", cause: error)
        }
    }
}
