@preconcurrency import Glibc
import SkiffKernel

/// One change a writable layer makes to the layers below, as `docker diff` prints it.
public struct LayerChange: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case added = "A"
        case changed = "C"
        case deleted = "D"
    }

    public let kind: Kind
    /// Absolute inside the container: `/etc/hostname`.
    public let path: String

    public init(_ kind: Kind, _ path: String) {
        self.kind = kind
        self.path = path
    }

    public var description: String { "\(kind.rawValue) \(path)" }
}

/// What an upper directory adds, changes and deletes, compared with the lower layers.
public enum LayerDiff {
    /// The changes in `upper` over `lowers` (bottom first), sorted by path. A whiteout is a
    /// deletion; an opaque directory deletes what the layers below had in it; anything else in
    /// the upper layer is an addition, or a change when a lower layer has that path.
    public static func changes(upper: String, lowers: [String]) throws(SyscallError) -> [LayerChange] {
        var changes: [LayerChange] = []
        try walk(upper, relative: "", lowers: lowers, into: &changes)
        return changes.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    }

    private static func walk(_ directory: String, relative: String, lowers: [String], into changes: inout [LayerChange])
        throws(SyscallError)
    {
        let names = try Files.names(in: directory)
        if !relative.isEmpty, Whiteout.isOpaque(directory) {
            for hidden in lowerNames(in: relative, lowers: lowers) where !names.contains(hidden) {
                changes.append(LayerChange(.deleted, "\(relative)/\(hidden)"))
            }
        }
        for name in names {
            let path = "\(directory)/\(name)"
            let containerPath = "\(relative)/\(name)"
            guard let info = FileTree.lstatInfo(path) else { continue }
            if Whiteout.isWhiteout(info) {
                if existsBelow(containerPath, lowers: lowers) { changes.append(LayerChange(.deleted, containerPath)) }
                continue
            }
            changes.append(LayerChange(existsBelow(containerPath, lowers: lowers) ? .changed : .added, containerPath))
            if FileTree.isDirectory(info) { try walk(path, relative: containerPath, lowers: lowers, into: &changes) }
        }
    }

    /// Whether the merged view of `lowers` has `path`: the highest layer that says anything about
    /// it decides, and a whiteout or an opaque parent on the way hides it from the layers beneath.
    static func existsBelow(_ path: String, lowers: [String]) -> Bool {
        let components = path.split(separator: "/").map(String.init)
        for layer in lowers.reversed() {
            var current = layer
            var hiddenBelow = false
            for (index, component) in components.enumerated() {
                current += "/\(component)"
                guard let info = FileTree.lstatInfo(current) else { break }
                if Whiteout.isWhiteout(info) { return false }
                if index == components.count - 1 { return true }
                if !FileTree.isDirectory(info) { break }
                if Whiteout.isOpaque(current) { hiddenBelow = true }
            }
            if hiddenBelow { return false }
        }
        return false
    }

    /// What the merged lower layers list in a directory.
    static func lowerNames(in relative: String, lowers: [String]) -> [String] {
        var names: Set<String> = []
        for layer in lowers {
            for name in (try? Files.names(in: layer + relative)) ?? [] where existsBelow("\(relative)/\(name)", lowers: lowers) {
                names.insert(name)
            }
        }
        return names.sorted()
    }
}
