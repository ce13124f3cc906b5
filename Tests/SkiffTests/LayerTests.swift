import CArchive
import Crypto
import Foundation
import Testing

@testable import SkiffKernel
@testable import SkiffLayers

/// One entry of a tar the tests write themselves, hostile ones included.
struct TarEntry {
    enum Kind { case file(String), directory, symlink(String), hardLink(String), characterDevice }
    let name: String
    let kind: Kind
    var xattr: (name: String, value: String)?
}

/// Writes `entries` as a pax tar with libarchive, exactly as given (no checks: tests need bad tars).
func writeTar(_ path: String, _ entries: [TarEntry]) throws {
    let writer = try #require(archive_write_new())
    defer { archive_write_free(writer) }
    archive_write_set_format_pax_restricted(writer)
    archive_write_add_filter_none(writer)
    try #require(archive_write_open_filename(writer, path) == ARCHIVE_OK)
    for item in entries {
        let entry = try #require(archive_entry_new())
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, item.name)
        archive_entry_set_mtime(entry, 946_684_800, 0)
        var data: [UInt8] = []
        switch item.kind {
        case .file(let text):
            data = Array(text.utf8)
            archive_entry_set_filetype(entry, SK_AE_IFREG)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_size(entry, Int64(data.count))
        case .directory:
            archive_entry_set_filetype(entry, SK_AE_IFDIR)
            archive_entry_set_perm(entry, 0o755)
        case .symlink(let target):
            archive_entry_set_filetype(entry, SK_AE_IFLNK)
            archive_entry_set_perm(entry, 0o777)
            archive_entry_set_symlink(entry, target)
        case .hardLink(let target):
            archive_entry_set_filetype(entry, SK_AE_IFREG)
            archive_entry_set_perm(entry, 0o644)
            archive_entry_set_hardlink(entry, target)
        case .characterDevice:
            archive_entry_set_filetype(entry, SK_AE_IFCHR)
            archive_entry_set_perm(entry, 0o666)
            archive_entry_set_rdevmajor(entry, 1)
            archive_entry_set_rdevminor(entry, 3)
        }
        if let xattr = item.xattr {
            let value = Array(xattr.value.utf8)
            value.withUnsafeBytes { archive_entry_xattr_add_entry(entry, xattr.name, $0.baseAddress, $0.count) }
        }
        try #require(archive_write_header(writer, entry) == ARCHIVE_OK)
        if !data.isEmpty { _ = data.withUnsafeBytes { archive_write_data(writer, $0.baseAddress, $0.count) } }
    }
    try #require(archive_write_close(writer) == ARCHIVE_OK)
}

/// A scratch directory for one test, removed by `cleanUp`.
struct Scratch {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-layer-test-\(UUID().uuidString)").path
    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    func cleanUp() { try? FileManager.default.removeItem(atPath: path) }
    func contents(of relative: String) throws -> String { try String(contentsOfFile: "\(path)/\(relative)", encoding: .utf8) }
}

/// Everything under `root` as `path type mode uid:gid size [target]` lines: a tree's fingerprint.
func treeListing(_ root: String) throws -> [String] {
    var lines: [String] = []
    func walk(_ relative: String) throws {
        for name in try Files.names(in: root + relative) {
            let path = root + relative + "/" + name
            let info = try #require(FileTree.lstatInfo(path))
            var line =
                "\(relative)/\(name) \(String(info.st_mode, radix: 8)) \(info.st_uid):\(info.st_gid) \(info.st_size) \(info.st_mtim.tv_sec)"
            if Whiteout.isWhiteout(info) { line += " whiteout" }
            if FileTree.isDirectory(info) {
                if Whiteout.isOpaque(path) { line += " opaque" }
                lines.append(line)
                try walk(relative + "/" + name)
            } else {
                if info.st_mode & S_IFMT == S_IFREG { line += " " + (try String(contentsOfFile: path, encoding: .utf8)) }
                lines.append(line)
            }
        }
    }
    try walk("")
    return lines
}

@Suite("lesson 08: layers, whiteouts and digests", .serialized, .enabled(if: Host.isRoot, "whiteouts are device nodes: needs root"))
struct Lesson08LayerTests {
    static let fixtures = Host.repository.appendingPathComponent("rootfs-samples/build/layers").path

    @Test("a tar layer's .wh. entries become a 0/0 whiteout and an opaque xattr")
    func applyConvertsWhiteouts() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let report = try LayerApplier(opaqueXattr: .trusted).apply(Self.fixtures + "/change.tar.gz", to: scratch.path)
        #expect(report.whiteouts == 1 && report.opaqueDirectories == 1)
        let whiteout = try #require(FileTree.lstatInfo(scratch.path + "/data/old"))
        #expect(Whiteout.isWhiteout(whiteout), "data/old is a character device 0/0")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/data/.wh.old"), "no .wh. file is left")
        #expect(Files.xattr(scratch.path + "/docs", "trusted.overlay.opaque") == "y")
        #expect(try scratch.contents(of: "etc/app.conf") == "version=2\n")
        let user = try Scratch()
        defer { user.cleanUp() }
        _ = try LayerApplier(opaqueXattr: .user).apply(Self.fixtures + "/change.tar.gz", to: user.path)
        #expect(Files.xattr(user.path + "/docs", "user.overlay.opaque") == "y", "or user.* for an overlay in a user namespace")
    }

    @Test("a layer created from a directory and applied again gives the same tree and the same digests")
    func roundTrip() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        _ = try LayerApplier(opaqueXattr: .user).apply(Self.fixtures + "/change.tar.gz", to: scratch.path + "/a")
        let first = try LayerCreator.create(from: scratch.path + "/a", to: scratch.path + "/first.tar.gz")
        _ = try LayerApplier(opaqueXattr: .user).apply(first.path, to: scratch.path + "/b")
        let second = try LayerCreator.create(from: scratch.path + "/b", to: scratch.path + "/second.tar.gz")
        #expect(try treeListing(scratch.path + "/a") == treeListing(scratch.path + "/b"))
        #expect(first.diffID == second.diffID)
        #expect(first.digest == second.digest)
        #expect(first.diffID != first.digest, "the gzip and the tar differ")
        // The digest is the sha256 of the file; the diff_id of the tar inside it.
        let gzipBytes = try Data(contentsOf: URL(fileURLWithPath: first.path))
        #expect(first.digest == "sha256:" + SHA256.hash(data: gzipBytes).map { String(format: "%02x", $0) }.joined())
        #expect(first.size == UInt64(gzipBytes.count))
        let tar = try Scratch()
        defer { tar.cleanUp() }
        _ = try LayerCreator.create(from: scratch.path + "/a", to: tar.path + "/plain.tar")
        #expect(try sha256(of: tar.path + "/plain.tar") == first.diffID)
        // And it is an OCI layer: the whiteouts are back in .wh. form.
        let names = try tarNames(first.path)
        #expect(names.contains("data/.wh.old"))
        #expect(names.contains("docs/.wh..wh..opq"))
    }

    @Test("diff reports additions, changes and deletions over the layers below")
    func diffKinds() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let base = scratch.path + "/base", upper = scratch.path + "/upper"
        _ = try LayerApplier(opaqueXattr: .user).apply(Self.fixtures + "/base.tar.gz", to: base)
        try FileManager.default.createDirectory(atPath: upper + "/etc", withIntermediateDirectories: true)
        try "version=3\n".write(toFile: upper + "/etc/app.conf", atomically: false, encoding: .utf8)
        try "new\n".write(toFile: upper + "/etc/extra", atomically: false, encoding: .utf8)
        #expect(mknod(upper + "/etc/motd", S_IFCHR, 0) == 0)
        try FileManager.default.createDirectory(atPath: upper + "/docs", withIntermediateDirectories: true)
        try LinuxSyscalls().perform(.setxattr(upper + "/docs", name: "user.overlay.opaque", value: "y"))
        let changes = try LayerDiff.changes(upper: upper, lowers: [base]).map(\.description)
        #expect(changes == ["C /docs", "D /docs/a.txt", "D /docs/b.txt", "C /etc", "C /etc/app.conf", "A /etc/extra", "D /etc/motd"])
    }

    @Test(
        "hostile tars are refused with the entry named, and nothing is written outside",
        arguments: [
            ("dot-dot", [TarEntry(name: "../escaped", kind: .file("x"))], "climb out of the layer"),
            ("dot-dot inside", [TarEntry(name: "a/../../escaped", kind: .file("x"))], "climb out of the layer"),
            (
                "through a symlink",
                [TarEntry(name: "link", kind: .symlink("/tmp")), TarEntry(name: "link/escaped", kind: .file("x"))],
                "goes through the symlink link"
            ),
            ("escaping symlink", [TarEntry(name: "a/link", kind: .symlink("../../../etc"))], "escapes the layer"),
            ("absolute hard link", [TarEntry(name: "passwd", kind: .hardLink("/etc/passwd"))], "absolute hard link"),
            ("hard link outside", [TarEntry(name: "passwd", kind: .hardLink("../etc/passwd"))], "climb out of the layer"),
            (
                "deep path",
                [TarEntry(name: Array(repeating: "d", count: 10_000).joined(separator: "/") + "/f", kind: .file("x"))],
                "longer than 4096 bytes"
            ),
            (
                "whiteout as a directory", [TarEntry(name: "docs/.wh..wh..opq/x", kind: .file("x"))],
                "whiteout name .wh..wh..opq as a directory"
            ),
            (
                "overlay xattr forged",
                [TarEntry(name: "docs", kind: .directory, xattr: ("trusted.overlay.opaque", "y"))],
                "only overlayfs may set"
            ),
        ] as [(String, [TarEntry], String)])
    func hostileTars(name: String, entries: [TarEntry], reason: String) throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let tar = scratch.path + "/hostile.tar"
        try writeTar(tar, entries)
        let target = scratch.path + "/sandbox/layer"
        #expect {
            _ = try LayerApplier(opaqueXattr: .user).apply(tar, to: target)
        } throws: { error in
            let message = "\(error)"
            return message.contains("entry \"\(entries.last!.name)") && message.contains(reason)
        }
        // Nothing beside the layer directory, nor in /tmp under the names the entries used.
        #expect(try Files.names(in: scratch.path + "/sandbox") == ["layer"])
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/sandbox/escaped"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/escaped"))
    }

    @Test("device nodes are refused unless unpacking as root")
    func devicesNeedRoot() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try writeTar(scratch.path + "/dev.tar", [TarEntry(name: "dev/null", kind: .characterDevice)])
        var applier = LayerApplier(opaqueXattr: .user)
        applier.asRoot = false
        #expect {
            _ = try applier.apply(scratch.path + "/dev.tar", to: scratch.path + "/layer")
        } throws: { error in
            "\(error)".contains("is a device node, which only root may create")
        }
        applier.asRoot = true
        _ = try applier.apply(scratch.path + "/dev.tar", to: scratch.path + "/layer2")
        let node = try #require(FileTree.lstatInfo(scratch.path + "/layer2/dev/null"))
        #expect(node.st_mode & S_IFMT == S_IFCHR && Files.majorMinor(node.st_rdev) == (1, 3))
    }

    @Test("a hard link to a file earlier in the layer and a relative symlink inside it are fine")
    func linksInside() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try writeTar(
            scratch.path + "/links.tar",
            [
                TarEntry(name: "bin/tool", kind: .file("#!/bin/sh\n")),
                TarEntry(name: "bin/alias", kind: .hardLink("bin/tool")),
                TarEntry(name: "usr/bin/tool", kind: .symlink("../../bin/tool")),
                TarEntry(name: "etc/abs", kind: .symlink("/etc/passwd")),
            ])
        _ = try LayerApplier(opaqueXattr: .user).apply(scratch.path + "/links.tar", to: scratch.path + "/layer")
        let tool = try #require(FileTree.lstatInfo(scratch.path + "/layer/bin/tool"))
        let alias = try #require(FileTree.lstatInfo(scratch.path + "/layer/bin/alias"))
        #expect(tool.st_ino == alias.st_ino)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: scratch.path + "/layer/usr/bin/tool") == "../../bin/tool")
    }
}

@Suite("lesson 09: the init layer's files")
struct Lesson09InitLayerTests {
    @Test("resolv.conf drops loopback nameservers, keeps search and options, and falls back like Docker")
    func resolvConf() {
        let host = "# generated\nsearch example.test\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\noptions edns0\n"
        #expect(
            InitLayer.resolvConf(host: host, nameservers: nil)
                == "# generated\nsearch example.test\noptions edns0\nnameserver 192.0.2.1\n")
        #expect(
            InitLayer.resolvConf(host: host, nameservers: ["198.51.100.7"])
                == "# generated\nsearch example.test\noptions edns0\nnameserver 198.51.100.7\n")
        #expect(InitLayer.resolvConf(host: "nameserver 127.0.0.53\n", nameservers: nil) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    }

    @Test("hosts names localhost and the container")
    func hosts() {
        let hosts = InitLayer.hosts(hostname: "web1", address: "10.88.0.5")
        #expect(hosts.hasPrefix("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"))
        #expect(hosts.hasSuffix("10.88.0.5\tweb1\n"))
        #expect(InitLayer.hosts(hostname: "web1", address: nil).hasSuffix("127.0.1.1\tweb1\n"))
    }

    @Test("--dns takes addresses only")
    func dnsValidation() throws {
        try InitLayer.validateNameservers(["192.0.2.53", "2001:db8::53"])
        #expect(throws: SkiffError.self) { try InitLayer.validateNameservers(["dns.example"]) }
        #expect(throws: SkiffError.self) { try InitLayer.validateNameservers(["300.1.1.1"]) }
    }
}

func tarNames(_ path: String) throws -> [String] {
    let reader = try #require(archive_read_new())
    defer { archive_read_free(reader) }
    archive_read_support_filter_all(reader)
    archive_read_support_format_tar(reader)
    try #require(archive_read_open_filename(reader, path, 65536) == ARCHIVE_OK)
    var names: [String] = []
    var entry: OpaquePointer?
    while archive_read_next_header(reader, &entry) == ARCHIVE_OK, let entry {
        names.append(String(cString: archive_entry_pathname(entry)))
    }
    return names
}
