import SkiffKernel

/// A union of layers (overlayfs, Documentation/filesystems/overlayfs.rst): read-only lower
/// directories, later ones on top, and one writable upper directory with its work directory on
/// the same mount. Reads fall through to the highest layer that has the file; the first write
/// copies the file up; a delete leaves a whiteout in the upper directory.
public struct LayerStack: Sendable, Equatable {
    /// Lower layers, bottom first (the image's base layer first).
    public var lowers: [String]
    public var upper: String
    /// overlayfs's scratch space for atomic copy-up; must be empty and on the upper's filesystem.
    public var work: String

    public init(lowers: [String], upper: String, work: String) {
        self.lowers = lowers
        self.upper = upper
        self.work = work
    }

    /// The mount options. overlayfs lists lowerdir top first, the opposite of the order layers
    /// are stacked in. `userxattr` makes it keep its marks in user.overlay.* xattrs, which is
    /// required for a mount made inside a user namespace.
    public func mountOptions(inUserNamespace: Bool) throws(SkiffError) -> String {
        for path in lowers + [upper, work] where path.contains(":") || path.contains(",") {
            throw SkiffError(
                .invalidInput, "layer path \(path) contains ':' or ',', which overlayfs options cannot carry: move or rename it")
        }
        let options = "lowerdir=\(lowers.reversed().joined(separator: ":")),upperdir=\(upper),workdir=\(work)"
        return inUserNamespace ? options + ",userxattr" : options
    }

    /// mount(2) of the union at `target`.
    public func mount(at target: String, inUserNamespace: Bool, kernel: Kernel) throws(SkiffError) {
        let options = try mountOptions(inUserNamespace: inUserNamespace)
        do {
            try kernel.run(
                .mount(source: "overlay", target: target, fstype: "overlay", flags: [], data: options),
                why: "the union: \(lowers.count) read-only layer\(lowers.count == 1 ? "" : "s") under one writable layer")
        } catch {
            throw SkiffError(.setupFailed, "cannot mount the layers at \(target)", cause: error)
        }
    }

    /// Idmapped bind mounts of every layer under `stage` (mount_setattr(2) with
    /// MOUNT_ATTR_IDMAP): the container's root, an unprivileged uid on the host, sees files owned
    /// by uid 0 on disk as its own, and what it writes lands on disk as uid 0, so layers stay
    /// shareable and a committed layer has the ids an image needs. The mounts take the mapping of
    /// `mapping`, which is released once they are made. The upper and work directories share one
    /// mount, as overlayfs requires, so their common parent is staged.
    /// Run in a private mount table (`Mounts.isolateThisProcess`), before the container is cloned.
    public func staged(under stage: String, mapping: some LentUserNamespace, kernel: Kernel) throws(SkiffError) -> StagedLayerStack {
        defer { mapping.release(kernel: kernel) }
        let userNamespace = mapping.userNamespacePath
        let writableParent = parentDirectory(of: upper)
        guard parentDirectory(of: work) == writableParent else {
            throw SkiffError(.invalidInput, "the upper directory \(upper) and the work directory \(work) must be side by side")
        }
        var mountPoints: [String] = []
        do {
            try kernel.run(.mkdir(stage, mode: 0o755), why: "where the idmapped layers are staged")
            var stagedLowers: [String] = []
            for (index, lower) in lowers.enumerated() {
                let target = "\(stage)/lower\(index)"
                try kernel.run(.mkdir(target, mode: 0o755), why: "a mount point for layer \(index)")
                try kernel.run(
                    .bindIdmapped(source: lower, target: target, userNamespace: userNamespace),
                    why: "layer \(index) as the container's root sees it: on-disk uid 0 is its uid 0")
                mountPoints.append(target)
                stagedLowers.append(target)
            }
            let writable = "\(stage)/rw"
            try kernel.run(.mkdir(writable, mode: 0o755), why: "a mount point for the writable layer")
            try kernel.run(
                .bindIdmapped(source: writableParent, target: writable, userNamespace: userNamespace),
                why: "the upper and work directories, idmapped the same way, on one mount")
            mountPoints.append(writable)
            let stack = LayerStack(lowers: stagedLowers, upper: "\(writable)/\(baseName(upper))", work: "\(writable)/\(baseName(work))")
            return StagedLayerStack(stack: stack, mountPoints: mountPoints)
        } catch {
            StagedLayerStack(stack: self, mountPoints: mountPoints).unstage(kernel: kernel)
            throw SkiffError(.setupFailed, "cannot stage the layers under \(stage)", cause: error)
        }
    }
}

/// A layer stack whose layers are idmapped mounts; `unstage` removes them.
public struct StagedLayerStack: Sendable {
    public let stack: LayerStack
    let mountPoints: [String]

    /// Detaches the staging mounts, last first. Errors are ignored: the private mount table they
    /// live in goes away with the process anyway.
    public func unstage(kernel: Kernel) {
        for mountPoint in mountPoints.reversed() {
            try? kernel.run(.umount(mountPoint, detach: true), why: "the staged layer is no longer needed")
        }
    }
}

func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func baseName(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
