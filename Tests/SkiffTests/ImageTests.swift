import CArchive
import Crypto
import Foundation
import SkiffKernel
import SkiffLayers
import Testing

@testable import SkiffCommands
@testable import SkiffImage

/// Images: names, the local store, docker save archives and OCI layouts, the `skiff` image
/// commands, and interop with skopeo, umoci and Docker. Each test has a store of its own in a
/// scratch directory it removes.
@Suite("lesson 12: images, the store, archives and layouts")
struct ImageTests {
    static let layerFixtures = Host.repository.appendingPathComponent("rootfs-samples/build/layers").path

    /// A store in a scratch directory, with the scratch directory for the test's other files.
    struct Fixture {
        let scratch: Scratch
        let store: ImageStore

        init(layersInUse: @escaping @Sendable () -> Set<SkiffImage.Digest> = { [] }) throws {
            scratch = try Scratch()
            store = ImageStore(root: scratch.path + "/root", layersInUse: layersInUse)
        }

        /// Another, empty store beside the first.
        func otherStore(_ name: String) -> ImageStore { ImageStore(root: "\(scratch.path)/\(name)") }

        func cleanUp() { scratch.cleanUp() }
    }

    /// A tar of `files` (name -> content), via the LayerTests writer.
    static func tar(_ path: String, _ files: [String: String]) throws {
        try writeTar(path, files.sorted { $0.key < $1.key }.map { TarEntry(name: $0.key, kind: .file($0.value)) })
    }

    /// The busybox sample as a rootfs tar, as `docker import` takes it.
    static func sampleTar(in directory: String) throws -> String {
        let path = directory + "/busybox.tar"
        let result = try Tool.run(try #require(Tool.find("tar")), ["-C", Host.sampleRootfs, "-cf", path, "."])
        try #require(result.status == 0, "tar: \(result.errorOutput)")
        return path
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    // MARK: pure

    @Test("image names read as Docker reads them and print back the same way")
    func referenceRoundTrips() throws {
        let cases: [(String, String, String, String?, String)] = [
            ("busybox", "docker.io", "library/busybox", "latest", "busybox:latest"),
            ("busybox:1.36", "docker.io", "library/busybox", "1.36", "busybox:1.36"),
            ("team/app:v2", "docker.io", "team/app", "v2", "team/app:v2"),
            ("localhost:5000/a/b", "localhost:5000", "a/b", "latest", "localhost:5000/a/b:latest"),
            ("registry.example.com/x", "registry.example.com", "x", "latest", "registry.example.com/x:latest"),
            ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "busybox:latest"),
        ]
        for (text, registry, repository, tag, printed) in cases {
            let reference = try Reference(parsing: text)
            #expect(reference.registry == registry && reference.repository == repository && reference.tag == tag, "\(text)")
            #expect(reference.description == printed)
            #expect(try Reference(parsing: reference.description) == reference, "\(text) reads back")
            #expect(try Reference(parsing: ImageStore.key(reference)) == reference, "the store's key of \(text) reads back")
        }
        let digest = try SkiffImage.Digest("sha256:" + String(repeating: "ab", count: 32))
        let pinned = try Reference(parsing: "busybox@\(digest)")
        #expect(pinned.digest == digest && pinned.tag == nil && pinned.description == "busybox@\(digest)")
        #expect(throws: SkiffError.self) { try Reference(parsing: "Busybox") }
        #expect(throws: SkiffError.self) { try Reference(parsing: "busybox:-bad") }
    }

    @Test("chain ids follow the OCI image spec: the first is the diff id, then sha256 of \"parent diffID\"")
    func chainIDs() throws {
        let a = SkiffImage.Digest(of: Array("layer a".utf8))
        let b = SkiffImage.Digest(of: Array("layer b".utf8))
        let c = SkiffImage.Digest(of: Array("layer c".utf8))
        let chain = ImageStore.chainIDs(of: [a, b, c])
        let second = "sha256:" + Self.sha256Hex(Array("\(a) \(b)".utf8))
        let third = "sha256:" + Self.sha256Hex(Array("\(second) \(c)".utf8))
        #expect(chain.map(\.description) == [a.description, second, third])
        #expect(ImageStore.chainIDs(of: []).isEmpty)
    }

    @Test("sizes and ages print as docker images prints them")
    func humanColumns() throws {
        #expect(humanSize(0) == "0B")
        #expect(humanSize(999) == "999B")
        #expect(humanSize(4_264_000) == "4.26MB")
        #expect(humanSize(1_500_000_000) == "1.5GB")
        let now = try #require(parseTimestamp("2024-05-01T12:00:00Z"))
        #expect(created("2024-05-01T11:59:30.123456789Z", now: now) == "30 seconds ago")
        #expect(created("2024-05-01T11:00:00Z", now: now) == "About an hour ago")
        #expect(created("2024-04-17T12:00:00Z", now: now) == "2 weeks ago")
        #expect(created(nil, now: now) == "N/A")
    }

    // MARK: the store

    @Test("import: a gzip layer from rootfs-samples becomes a one-layer image, its diff id the sha256 of the uncompressed tar")
    func importLayerFixture() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let layer = Self.layerFixtures + "/base.tar.gz"
        try #require(Files.exists(layer), "run `make samples` first")
        let loaded = try fixture.store.importTar(layer, as: try Reference(parsing: "fixtures/base:1"))
        let image = try fixture.store.resolve("fixtures/base:1")
        #expect(image.id == loaded.id && image.manifestDigest == loaded.manifestDigest)
        #expect(image.manifest.layers.count == 1 && image.manifest.layers[0].mediaType == MediaType.ociLayerGzip)
        #expect(image.manifest.layers[0].digest.description == (try sha256(of: layer)), "stored as it is")
        // The diff id, computed here by gunzip, not by the code under test.
        let gunzip = try Tool.run(try #require(Tool.find("sh")), ["-c", "gzip -dc '\(layer)' | sha256sum"])
        #expect(image.config.rootfs.diff_ids.map(\.hex) == [String(gunzip.output.prefix(64))])
        #expect(image.config.history?.first?.created_by == "skiff import")
        #expect(image.config.os == "linux" && image.config.architecture == Platform.current.architecture)
        #expect(image.id == SkiffImage.Digest(of: try fixture.store.blobs.verifiedBytes(image.id)), "the id is the config's digest")
        #expect(throws: SkiffError.self) { try fixture.store.importTar(fixture.scratch.path, as: nil) }
        let notTar = fixture.scratch.path + "/not.tar"
        try Array(repeating: "not a tar\n", count: 100).joined().write(toFile: notTar, atomically: false, encoding: .utf8)
        #expect(throws: SkiffError.self) { try fixture.store.importTar(notTar, as: nil) }
        #expect(try fixture.store.images().count == 1, "nothing stored for the refused files")
    }

    @Test("tag, rmi by name and by id, and garbage collection of blobs and unpacked layers")
    func tagRemoveCollect() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        let base = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "app:base"))
        let change = try store.importTar(Self.layerFixtures + "/change.tar.gz", as: try Reference(parsing: "app:change"))
        try store.tag("app:base", as: "app:stable")
        try store.tag(String(base.id.hex.prefix(12)), as: "other/app:1")
        #expect(try store.resolve("app:stable").id == base.id)
        #expect(try store.resolve("other/app:1").references.map(\.description) == ["app:base", "app:stable", "other/app:1"])
        #expect(try store.resolve(base.id.description).id == base.id)
        #expect(throws: SkiffError.self) { try store.tag("app:base", as: "app@\(base.manifestDigest)") }
        #expect(throws: SkiffError.self) { try store.resolve("app:nosuch") }

        // Unpacking makes one directory per chain id; a second unpack reuses it.
        let directories = try store.unpack(try store.resolve("app:base"))
        #expect(directories == [store.layerDirectory(for: try store.resolve("app:base").chainIDs[0])])
        #expect(try String(contentsOfFile: directories[0] + "/etc/app.conf", encoding: .utf8).contains("version=1"))
        var events: [LayerProgress.State] = []
        _ = try store.unpack(try store.resolve("app:base")) { events.append($0.state) }
        #expect(events.isEmpty, "already unpacked: nothing to do")

        // A name goes; the image stays while it has others.
        #expect(try store.remove("app:stable") == [.untagged(try Reference(parsing: "app:stable"))])
        #expect(try store.images().count == 2)
        // By id, names in two repositories need --force.
        #expect(throws: SkiffError.self) { try store.remove(base.id.short) }
        let removed = try store.remove(base.id.short, force: true)
        #expect(removed.contains(.deleted(base.id)) && removed.filter { if case .untagged = $0 { true } else { false } }.count == 2)
        #expect(try store.images().map(\.id) == [change.id])
        #expect(!store.blobs.contains(base.id) && store.blobs.contains(change.id), "the removed image's config is collected")
        #expect(!Files.exists(directories[0]), "its unpacked layer too")
        #expect(Set(store.blobs.all()) == [change.manifestDigest, change.id, try store.resolve("app:change").manifest.layers[0].digest])

        _ = try store.remove("app:change")
        #expect(try store.images().isEmpty && store.blobs.all().isEmpty)
        #expect(throws: SkiffError.self) { try store.remove("app:change") }
    }

    @Test("leftovers of a killed skiff (staging, half-unpacked layers, half-copied blobs) are swept; downloads to resume are kept")
    func staleLeftoversSwept() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        _ = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "a:1"))
        _ = try store.importTar(Self.layerFixtures + "/change.tar.gz", as: try Reference(parsing: "b:1"))
        // A process that has ended: its pid names the leftovers.
        let gone = try Started(try #require(Tool.find("true")), [])
        let pid = gone.pid
        _ = gone.finish()
        let stale = [
            "\(store.temporaryDirectory)/load-\(pid)-abcdef", "\(store.layersDirectory)/.tmp-\(String(repeating: "1", count: 64))-\(pid)",
            "\(store.blobs.root)/ingest/copy-\(pid)-42",
        ]
        let live = [
            "\(store.temporaryDirectory)/load-\(getpid())-abcdef",
            "\(store.blobs.root)/ingest/\(String(repeating: "2", count: 64)).partial",
        ]
        for path in stale + live { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        _ = try store.remove("b:1")
        #expect(stale.allSatisfy { !Files.exists($0) }, "a dead process's leftovers are removed")
        #expect(live.allSatisfy { Files.exists($0) }, "a live process's staging and a resumable download stay")
        #expect(try store.images().map(\.references) == [[try Reference(parsing: "a:1")]])
    }

    @Test("an image recorded under NAME@DIGEST resolves by it, lists with the tag <none>, and goes with rmi NAME@DIGEST")
    func digestReferences() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        let image = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: nil)
        let pinned = try Reference(parsing: "localhost:5000/pinned@\(image.manifestDigest)")
        try store.add(manifest: image.manifestDigest, references: [pinned])
        #expect(try store.resolve(pinned.description).id == image.id)
        #expect(try store.resolve("localhost:5000/pinned@\(image.manifestDigest)").references == [pinned])
        #expect(try store.remove(pinned.description) == [.untagged(pinned), .deleted(image.id)])
        #expect(try store.images().isEmpty)
    }

    @Test("an unpacked layer a container still uses survives rmi; an id prefix matching two images is refused as ambiguous")
    func layersInUseAndAmbiguity() throws {
        let inUse = SharedValue<Set<SkiffImage.Digest>>([])
        let fixture = try Fixture { inUse.withLock { $0 } }
        defer { fixture.cleanUp() }
        let store = fixture.store
        let image = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "kept:1"))
        let directory = try store.unpack(try store.resolve("kept:1"))[0]
        inUse.withLock { $0 = [try! store.resolve("kept:1").chainIDs[0]] }
        _ = try store.remove("kept:1")
        #expect(Files.isDirectory(directory) == true, "a container's layer stays")
        #expect(!store.blobs.contains(image.id))

        // Seventeen images: two of them must share their id's first hex digit.
        var ids: [SkiffImage.Digest] = []
        for number in 0..<17 {
            let path = "\(fixture.scratch.path)/\(number).tar"
            try Self.tar(path, ["file": "\(number)"])
            ids.append(try store.importTar(path, as: nil).id)
        }
        let shared = try #require(Dictionary(grouping: ids, by: { $0.hex.prefix(1) }).first { $0.value.count > 1 }?.key)
        #expect {
            try store.resolve(String(shared))
        } throws: { error in
            "\(error)".contains("ambiguous")
        }
        inUse.withLock { $0 = [] }
        for id in ids { _ = try store.remove(id.description) }
        #expect(!Files.exists(directory), "collected once no container uses it")
    }

    // MARK: formats

    @Test("OCI layout: save as a directory, skopeo and umoci read it, and it loads into a fresh store unchanged")
    func ociLayoutRoundTrip() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let tarball = try Self.sampleTar(in: fixture.scratch.path)
        let imported = try fixture.store.importTar(tarball, as: try Reference(parsing: "localhost:5000/skiff/busybox:sample"))
        let layout = fixture.scratch.path + "/layout"
        try fixture.store.save(["localhost:5000/skiff/busybox:sample"], to: layout, asDirectory: true)
        #expect(try String(contentsOfFile: layout + "/oci-layout", encoding: .utf8) == #"{"imageLayoutVersion":"1.0.0"}"#)

        let other = fixture.otherStore("other")
        let loaded = try other.load(layout)
        #expect(loaded == [imported], "same id, same manifest, same name")
        #expect(try other.resolve("localhost:5000/skiff/busybox:sample").config == (try fixture.store.resolve(imported.id.hex).config))

        if let skopeo = Tool.find("skopeo") {
            let inspect = try Tool.run(skopeo, ["inspect", "oci:\(layout):sample"])
            #expect(inspect.status == 0, "\(inspect.errorOutput)")
            let layer = try fixture.store.resolve(imported.id.hex).manifest.layers[0].digest
            #expect(inspect.output.contains(layer.description) && inspect.output.contains("\"Os\": \"linux\""), "\(inspect.output)")
        }
        if let umoci = Tool.find("umoci") {
            let bundle = fixture.scratch.path + "/bundle"
            let unpacked = try Tool.run(umoci, ["unpack"] + (Host.isRoot ? [] : ["--rootless"]) + ["--image", "\(layout):sample", bundle])
            #expect(unpacked.status == 0, "\(unpacked.errorOutput)")
            #expect(FileManager.default.isExecutableFile(atPath: bundle + "/rootfs/probe"), "umoci unpacked Skiff's layer")
        }
    }

    @Test("docker archive: save as a tar and load it back; load skopeo's docker-archive and a legacy archive with a symlinked layer")
    func dockerArchiveRoundTrips() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        let base = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "fixtures/base:1"))
        let sample = try store.importTar(try Self.sampleTar(in: fixture.scratch.path), as: try Reference(parsing: "busybox:sample"))
        let archive = fixture.scratch.path + "/images.tar"
        try store.save(["fixtures/base:1", "busybox:sample"], to: archive)

        let second = fixture.otherStore("second")
        var states: [LayerProgress.State] = []
        let loaded = try second.load(archive) { states.append($0.state) }
        #expect(Set(loaded.map(\.id)) == [base.id, sample.id])
        #expect(try second.resolve("busybox:sample").id == sample.id && second.resolve("fixtures/base:1").id == base.id)
        #expect(states.filter { $0 == .done }.count == 2, "one finished layer each")
        _ = try second.load(archive) { states.append($0.state) }
        #expect(states.suffix(2) == [.alreadyExists, .alreadyExists], "a second load stores nothing new")

        if let skopeo = Tool.find("skopeo") {
            // skopeo's docker-archive: CONFIGHEX.json and LAYERHEX.tar, uncompressed layers.
            let layout = fixture.scratch.path + "/layout"
            try store.save(["busybox:sample"], to: layout, asDirectory: true)
            let fromSkopeo = fixture.scratch.path + "/skopeo.tar"
            let copy = try Tool.run(skopeo, ["copy", "oci:\(layout):sample", "docker-archive:\(fromSkopeo):skopeo/busybox:copied"])
            try #require(copy.status == 0, "\(copy.errorOutput)")
            let third = fixture.otherStore("third")
            let fromCopy = try third.load(fromSkopeo)
            #expect(fromCopy.map(\.references) == [[try Reference(parsing: "skopeo/busybox:copied")]])
            #expect(fromCopy.first?.id == sample.id, "skopeo keeps the config, so the image id is the same")
        }

        // Docker before 25: ID/layer.tar, a repeated layer as a symlink to the first copy.
        let legacy = fixture.scratch.path + "/legacy"
        let layerTar = fixture.scratch.path + "/layer.tar"
        try Self.tar(layerTar, ["hello.txt": "hello from a legacy archive\n"])
        let layerBytes = try #require(FileManager.default.contents(atPath: layerTar))
        let diffID = "sha256:" + Self.sha256Hex(Array(layerBytes))
        try FileManager.default.createDirectory(atPath: legacy + "/aaa", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: legacy + "/bbb", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: layerTar, toPath: legacy + "/aaa/layer.tar")
        try FileManager.default.createSymbolicLink(atPath: legacy + "/bbb/layer.tar", withDestinationPath: "../aaa/layer.tar")
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(diffID)","\#(diffID)"]}}"#
        try config.write(toFile: legacy + "/cfg.json", atomically: false, encoding: .utf8)
        try #"[{"Config":"cfg.json","RepoTags":["legacy:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#
            .write(toFile: legacy + "/manifest.json", atomically: false, encoding: .utf8)
        let legacyTar = fixture.scratch.path + "/legacy.tar"
        try #require(try Tool.run(try #require(Tool.find("tar")), ["-C", legacy, "-cf", legacyTar, "."]).status == 0)
        let fourth = fixture.otherStore("fourth")
        let legacyImage = try #require(try fourth.load(legacyTar).first)
        #expect(legacyImage.id.description == "sha256:" + Self.sha256Hex(Array(config.utf8)))
        let stored = try fourth.resolve("legacy:1")
        #expect(stored.manifest.layers.map(\.digest.description) == [diffID, diffID])
        #expect(stored.manifest.layers[0].mediaType == MediaType.ociLayer)
    }

    @Test("hostile archives are refused: '..', absolute names, symlinks out, devices; nothing lands outside the staging directory")
    func hostileArchives() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let cases: [(String, [TarEntry], String)] = [
            ("dotdot", [TarEntry(name: "../escaped", kind: .file("x"))], "'..'"),
            ("nested-dotdot", [TarEntry(name: "blobs/../../escaped", kind: .file("x"))], "'..'"),
            ("absolute", [TarEntry(name: "/tmp/escaped-\(UUID().uuidString)", kind: .file("x"))], "absolute"),
            (
                "symlink-out",
                [
                    TarEntry(name: "manifest.json", kind: .symlink("../../../etc/passwd")),
                    TarEntry(name: "x", kind: .file("x")),
                ], "outside"
            ),
            ("device", [TarEntry(name: "null", kind: .characterDevice)], "not a file"),
            ("hardlink-out", [TarEntry(name: "link", kind: .hardLink("/etc/passwd"))], "absolute"),
        ]
        for (name, entries, expected) in cases {
            let path = "\(fixture.scratch.path)/\(name).tar"
            try writeTar(path, entries)
            #expect {
                try fixture.store.load(path)
            } throws: { error in
                let message = "\(error)"
                return message.contains(expected) && message.contains(path)
            }
        }
        #expect(!Files.exists(fixture.scratch.path + "/root/escaped") && !Files.exists(fixture.scratch.path + "/escaped"))
        #expect(try Files.names(in: fixture.store.temporaryDirectory).isEmpty, "staging directories are removed")
        #expect(try fixture.store.images().isEmpty && fixture.store.blobs.all().isEmpty)

        // A manifest.json that points out of the archive is refused too.
        let outside = fixture.scratch.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try #"[{"Config":"../../etc/passwd","RepoTags":[],"Layers":[]}]"#
            .write(toFile: outside + "/manifest.json", atomically: false, encoding: .utf8)
        #expect {
            try fixture.store.load(outside)
        } throws: { error in
            "\(error)".contains("'..'")
        }
    }

    @Test("archives are bounded: too many entries, too many bytes, and oversized JSON documents are refused")
    func boundedArchives() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let archive = fixture.scratch.path + "/many.tar"
        try Self.tar(archive, ["a": "1", "b": "2", "c": "3", "d": String(repeating: "x", count: 5000)])
        var few = ImageArchive.Limits()
        few.maxEntries = 3
        try ImageArchive.extract(archive, to: fixture.scratch.path + "/all")
        #expect(try Files.names(in: fixture.scratch.path + "/all") == ["a", "b", "c", "d"], "within the default limits")
        #expect {
            try ImageArchive.extract(archive, to: fixture.scratch.path + "/few", limits: few)
        } throws: { error in
            "\(error)".contains("more than 3 entries")
        }
        var small = ImageArchive.Limits()
        small.maxTotalBytes = 4096
        #expect {
            try ImageArchive.extract(archive, to: fixture.scratch.path + "/small", limits: small)
        } throws: { error in
            "\(error)".contains("holds more than")
        }
        let huge = fixture.scratch.path + "/huge"
        try FileManager.default.createDirectory(atPath: huge, withIntermediateDirectories: true)
        try Data(repeating: 0x20, count: ImageStore.maxDocumentBytes + 1).write(to: URL(fileURLWithPath: huge + "/manifest.json"))
        #expect {
            try fixture.store.load(huge)
        } throws: { error in
            "\(error)".contains("manifest.json is not a file of at most 8 MiB")
        }
    }

    @Test("import of a zstd tar stores it as is with the zstd media type, and its diff id is that of the tar inside")
    func importZstd() throws {
        let zstd = try #require(Tool.find("zstd"), "apt-get install zstd")
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let tar = fixture.scratch.path + "/rootfs.tar"
        try Self.tar(tar, ["etc/hostname": "zstd\n"])
        #expect(try Tool.run(zstd, ["-q", tar, "-o", tar + ".zst"]).status == 0)
        let imported = try fixture.store.importTar(tar + ".zst", as: try Reference(parsing: "zstd:1"))
        let image = try fixture.store.resolve(imported.id.hex)
        #expect(image.manifest.layers.map(\.mediaType) == [MediaType.ociLayerZstd])
        #expect(image.config.rootfs.diff_ids.map(\.description) == [try sha256(of: tar)])
        let directory = try fixture.store.unpack(image)[0]
        #expect(try String(contentsOfFile: directory + "/etc/hostname", encoding: .utf8) == "zstd\n")
    }

    @Test("skiff load on a terminal shows one line per layer that updates in place")
    func terminalProgress() throws {
        let script = try #require(Tool.find("script"), "util-linux's script gives the command a terminal")
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let skiff = try Host.executable("skiff")
        _ = try fixture.store.load(try Self.twoLayerArchive(in: fixture.scratch.path, name: "two"))
        let archive = fixture.scratch.path + "/two.tar"
        try fixture.store.save(["fixtures/two:1"], to: archive)
        let root = fixture.scratch.path + "/tty"
        let result = try Tool.run(script, ["-q", "-e", "-c", "'\(skiff)' --root '\(root)' load -i '\(archive)'", "/dev/null"])
        #expect(result.status == 0, "\(result.output)")
        let layers = try fixture.store.resolve("fixtures/two:1").manifest.layers
        for layer in layers {
            #expect(result.output.contains("\(layer.digest.short): Loading"), "\(result.output)")
            #expect(result.output.contains("\r\u{1B}[K\(layer.digest.short): Loaded"), "the line is rewritten in place")
        }
        #expect(result.output.contains("Loaded image: fixtures/two:1"))
    }

    @Test("a corrupted blob is refused and not stored; a blob changed inside the store is reported, never used")
    func corruptedBlobs() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let image = try fixture.store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "good:1"))
        let layout = fixture.scratch.path + "/layout"
        try fixture.store.save(["good:1"], to: layout, asDirectory: true)
        let layer = try fixture.store.resolve("good:1").manifest.layers[0].digest
        let blob = "\(layout)/blobs/sha256/\(layer.hex)"
        var bytes = try #require(FileManager.default.contents(atPath: blob))
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: blob))
        // As a docker archive, the layer no longer matches the config's diff id, or no longer
        // decompresses to a tar at all (gzip's own check may catch the flipped byte first).
        let first = fixture.otherStore("first")
        #expect {
            try first.load(layout)
        } throws: { error in
            let message = "\(error)"
            return message.contains("but the config says") || message.contains("is damaged") || message.contains("is not a tar archive")
        }
        #expect(try first.images().isEmpty, "nothing is named")
        // As a plain OCI layout, it no longer matches its digest.
        try FileManager.default.removeItem(atPath: layout + "/manifest.json")

        let other = fixture.otherStore("other")
        #expect {
            try other.load(layout)
        } throws: { error in
            let message = "\(error)"
            return message.contains("corrupt") && message.contains(layer.description)
        }
        #expect(try !other.blobs.contains(layer) && other.images().isEmpty, "nothing named, the bad blob not stored")
        #expect(((try? Files.names(in: other.blobs.root + "/ingest")) ?? []).isEmpty, "the refused copy is gone")

        // A docker archive whose layer does not match the config's diff id.
        let archive = fixture.scratch.path + "/archive"
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        try Self.tar(archive + "/layer.tar", ["a": "b"])
        try #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:\#(String(repeating: "0", count: 64))"]}}"#
            .write(toFile: archive + "/c.json", atomically: false, encoding: .utf8)
        try #"[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["layer.tar"]}]"#
            .write(toFile: archive + "/manifest.json", atomically: false, encoding: .utf8)
        #expect(throws: SkiffError.self) { try other.load(archive) }
        #expect(try other.images().isEmpty)

        // Changed on disk after it was stored: resolving reads the config and says so.
        let config = fixture.store.blobs.path(of: image.id)
        try #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .write(toFile: config, atomically: false, encoding: .utf8)
        #expect {
            try fixture.store.resolve("good:1")
        } throws: { error in
            "\(error)".contains("corrupt")
        }
    }

    // MARK: the command line

    @Test("skiff images/tag/rmi/history/inspect/save/load/import, --root and SKIFF_ROOT, exit status 125 with a clear message")
    func commandLine() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let skiff = try Host.executable("skiff")
        let root = fixture.scratch.path + "/cli"
        func run(_ arguments: [String], environment: [String] = []) throws -> Tool.Result {
            try Tool.run(skiff, arguments, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] + environment)
        }
        let tarball = try Self.sampleTar(in: fixture.scratch.path)
        let imported = try run(["--root", root, "import", tarball, "sample:1"])
        #expect(imported.status == 0, "\(imported.errorOutput)")
        let id = imported.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.hasPrefix("sha256:") && id.count == 71)

        #expect(try run(["tag", "--root", root, "sample:1", "localhost:5000/sample:2"]).status == 0)
        let images = try run(["images"], environment: ["SKIFF_ROOT=\(root)"])
        let lines = images.output.split(separator: "\n").map(String.init)
        #expect(
            lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"])
        #expect(lines.count == 3 && lines.allSatisfy { $0.contains(String(id.dropFirst(7).prefix(12))) || $0.hasPrefix("REPOSITORY") })
        #expect(lines.contains { $0.hasPrefix("localhost:5000/sample ") && $0.contains(" 2 ") })
        #expect(try run(["--root", root, "images", "-q", "--no-trunc"]).output == "\(id)\n\(id)\n")

        let filtered = try run(["--root", root, "images", "localhost:5000/sample"]).output.split(separator: "\n")
        #expect(filtered.count == 2 && filtered[1].hasPrefix("localhost:5000/sample "), "only the repository asked for: \(filtered)")

        let history = try run(["--root", root, "history", "sample:1"])
        #expect(history.output.contains("skiff import") && history.output.contains("imported from busybox.tar"))
        let inspect = try run(["--root", root, "inspect", "sample:1"])
        let decoded = try JSONSerialization.jsonObject(with: Data(inspect.output.utf8)) as? [[String: Any]]
        #expect(decoded?.first?["Id"] as? String == id && decoded?.first?["Os"] as? String == "linux")

        let archive = fixture.scratch.path + "/out.tar"
        #expect(try run(["--root", root, "save", "-o", archive, "sample:1"]).status == 0)
        let load = try run(["--root", root + "2", "load", "-i", archive])
        #expect(load.status == 0 && load.output.contains("Loaded image: sample:1"), "\(load.output) \(load.errorOutput)")
        #expect(load.output.contains(": done"), "plain progress lines when stdout is not a terminal")

        // Pipes, as with docker: save to standard output, load and import from standard input.
        let sh = try #require(Tool.find("sh"))
        let piped = try Tool.run(sh, ["-c", "'\(skiff)' --root '\(root)' save sample:1 | '\(skiff)' --root '\(root)3' load -q"])
        #expect(piped.status == 0 && piped.output == "Loaded image: sample:1\n", "\(piped.errorOutput)")
        let stdinImport = try Tool.run(sh, ["-c", "'\(skiff)' --root '\(root)3' import - piped:1 < '\(tarball)'"])
        #expect(stdinImport.status == 0 && stdinImport.output.hasPrefix("sha256:"), "\(stdinImport.errorOutput)")
        #expect(
            try ImageStore(root: root + "3").resolve("piped:1").manifest.layers
                == ImageStore(root: root).resolve("sample:1").manifest.layers)

        let removal = try run(["--root", root, "rmi", "sample:1", "localhost:5000/sample:2"])
        #expect(removal.output == "Untagged: sample:1\nUntagged: localhost:5000/sample:2\nDeleted: \(id)\n")
        #expect(try run(["--root", root, "images", "-q"]).output.isEmpty)

        let missing = try run(["--root", root, "rmi", "nosuch:1"])
        #expect(missing.status == 125 && missing.errorOutput == "skiff: no such image: nosuch:1\n")
        let badName = try run(["--root", root, "tag", "nosuch", "Bad:Name"])
        #expect(badName.status == 125 && badName.errorOutput.contains("invalid image name"))
        let export = try run(["--root", root, "export", "c1"])
        #expect(export.status == 125 && export.errorOutput.contains("skiff save"))
        let usage = try run(["--root", root, "frobnicate"])
        #expect(usage.status == 125, "a wrong command line is Skiff's error: \(usage.errorOutput)")
        let notArchive = try run(["--root", root, "load", "-i", tarball])
        #expect(notArchive.status == 125 && notArchive.errorOutput.contains("neither a docker save archive"))
    }
}

extension ImageTests {
    /// The two layer fixtures as one two-layer image, written as a docker archive directory
    /// whose layers are the gzip fixtures (docker load accepts compressed layer files too).
    static func twoLayerArchive(in directory: String, name: String) throws -> String {
        let archive = "\(directory)/\(name)"
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        var diffIDs: [String] = []
        for layer in ["base", "change"] {
            try FileManager.default.copyItem(atPath: "\(layerFixtures)/\(layer).tar.gz", toPath: "\(archive)/\(layer).tar.gz")
            let gunzip = try Tool.run(try #require(Tool.find("sh")), ["-c", "gzip -dc '\(archive)/\(layer).tar.gz' | sha256sum"])
            diffIDs.append("\"sha256:\(gunzip.output.prefix(64))\"")
        }
        let config = """
            {"architecture":"\(Platform.current.architecture)","os":"linux","config":{"Cmd":["/bin/sh"]},\
            "rootfs":{"type":"layers","diff_ids":[\(diffIDs.joined(separator: ","))]},\
            "history":[{"created_by":"ADD base"},{"created_by":"ENV X=1","empty_layer":true},{"created_by":"ADD change"}]}
            """
        try config.write(toFile: archive + "/config.json", atomically: false, encoding: .utf8)
        try #"[{"Config":"config.json","RepoTags":["fixtures/two:1"],"Layers":["base.tar.gz","change.tar.gz"]}]"#
            .write(toFile: archive + "/manifest.json", atomically: false, encoding: .utf8)
        return archive
    }

    @Test(
        "unpack: one directory per chain id, whiteouts as 0/0 devices and opaque directories marked, shared by images on the same layers",
        .enabled(if: Host.isRoot, "whiteouts are device nodes: needs root"))
    func unpackSharedLayers() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        _ = try store.load(try Self.twoLayerArchive(in: fixture.scratch.path, name: "two"))
        let image = try store.resolve("fixtures/two:1")
        #expect(image.manifest.layers.map(\.mediaType) == [MediaType.ociLayerGzip, MediaType.ociLayerGzip])
        var events: [LayerProgress.State] = []
        let directories = try store.unpack(image) { events.append($0.state) }
        #expect(directories == image.chainIDs.map(store.layerDirectory(for:)))
        #expect(events == [.unpacking, .done, .unpacking, .done])
        let whiteout = try #require(FileTree.lstatInfo(directories[1] + "/data/old"))
        #expect(Whiteout.isWhiteout(whiteout), "data/.wh.old became a 0/0 character device")
        #expect(Files.xattr(directories[1] + "/docs", Whiteout.OpaqueXattr.trusted.rawValue) == "y", "root's overlayfs reads trusted.*")
        #expect(try String(contentsOfFile: directories[0] + "/etc/app.conf", encoding: .utf8).contains("version=1"))
        #expect(try String(contentsOfFile: directories[1] + "/etc/app.conf", encoding: .utf8).contains("version=2"))
        #expect(try Files.names(in: store.layersDirectory) == image.chainIDs.map(\.hex).sorted(), "no temporary directory is left")

        let history = store.history(of: image)
        #expect(history.map(\.createdBy) == ["ADD change", "ENV X=1", "ADD base"])
        #expect(history.map(\.size) == [image.manifest.layers[1].size, 0, image.manifest.layers[0].size])
        #expect(history.map(\.imageID) == [image.id, nil, nil])

        // An image on the base layer alone shares its directory, and keeps it when the other goes.
        let base = try store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "fixtures/base:1"))
        #expect(try store.unpack(try store.resolve("fixtures/base:1")) == [directories[0]])
        _ = try store.remove("fixtures/two:1")
        #expect(Files.isDirectory(directories[0]) == true && !Files.exists(directories[1]))
        #expect(try store.resolve(base.id.hex).id == base.id)
    }

    @Test("export: the image's layers flattened into one tar, whiteouts applied, which import takes back as a one-layer image")
    func exportFlattens() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        _ = try store.load(try Self.twoLayerArchive(in: fixture.scratch.path, name: "two"))
        let exported = fixture.scratch.path + "/rootfs.tar"
        try store.exportRootfs(try store.resolve("fixtures/two:1"), to: exported)
        // Read back by GNU tar, not by the code under test.
        let tar = try #require(Tool.find("tar"))
        let listing = try Tool.run(tar, ["-tf", exported])
        let names = Set(listing.output.split(separator: "\n").map { $0.hasSuffix("/") ? String($0.dropLast()) : String($0) })
        #expect(names.isSuperset(of: ["etc/app.conf", "etc/new.conf", "etc/motd", "data/keep", "docs/c.txt"]), "\(names)")
        #expect(names.isDisjoint(with: ["data/old", "docs/a.txt", "docs/b.txt"]), "deleted and opaque-hidden files are gone")
        #expect(!names.contains { $0.contains(".wh.") }, "no whiteout entries")
        let unpacked = fixture.scratch.path + "/unpacked"
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        #expect(try Tool.run(tar, ["-C", unpacked, "-xf", exported]).status == 0)
        #expect(
            try String(contentsOfFile: unpacked + "/etc/app.conf", encoding: .utf8).contains("version=2"), "the upper layer's file wins")

        let flat = try store.importTar(exported, as: try Reference(parsing: "fixtures/flat:1"))
        let image = try store.resolve(flat.id.hex)
        #expect(try image.manifest.layers.count == 1 && image.config.rootfs.diff_ids.map(\.description) == [sha256(of: exported)])
    }

    @Test("unpack refuses a layer whose content is not the diff id its config claims: shared layer directories cannot be poisoned")
    func unpackChecksDiffIDs() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let store = fixture.store
        let honest = try store.resolve(try store.importTar(Self.layerFixtures + "/change.tar.gz", as: nil).id.hex)
        // A config that claims the base layer's diff id for the change layer's blob.
        let gunzip = try Tool.run(try #require(Tool.find("sh")), ["-c", "gzip -dc '\(Self.layerFixtures)/base.tar.gz' | sha256sum"])
        var config = honest.config
        config.rootfs.diff_ids = [try SkiffImage.Digest("sha256:" + gunzip.output.prefix(64))]
        let configBytes = try ImageStore.encode(config)
        let manifest = Manifest(
            config: Descriptor(mediaType: MediaType.ociConfig, digest: try store.blobs.put(configBytes), size: Int64(configBytes.count)),
            layers: honest.manifest.layers)
        try store.add(manifest: try store.blobs.put(try ImageStore.encode(manifest)), references: [try Reference(parsing: "liar:1")])
        #expect {
            try store.unpack(try store.resolve("liar:1"))
        } throws: { error in
            "\(error)".contains("but its config says")
        }
        #expect(!Files.exists(store.layerDirectory(for: config.rootfs.diff_ids[0])), "nothing unpacked under the claimed chain id")
    }

    @Test("an OCI layout with a multi-platform index loads this machine's image, and says which platforms it has when none fits")
    func platformIndex() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let imported = try fixture.store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "multi:1"))
        let layout = fixture.scratch.path + "/layout"
        try fixture.store.save(["multi:1"], to: layout, asDirectory: true)
        try FileManager.default.removeItem(atPath: layout + "/manifest.json")
        let manifestSize = try #require(fixture.store.blobs.size(of: imported.manifestDigest))
        func writeIndex(_ platforms: [Platform]) throws {
            let nested = Index(
                manifests: platforms.map {
                    Descriptor(mediaType: MediaType.ociManifest, digest: imported.manifestDigest, size: manifestSize, platform: $0)
                })
            let bytes = try ImageStore.encode(nested)
            let digest = SkiffImage.Digest(of: bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(layout)/blobs/sha256/\(digest.hex)"))
            var entry = Descriptor(mediaType: MediaType.ociIndex, digest: digest, size: Int64(bytes.count))
            entry.annotations = [LayoutAnnotation.imageName: "docker.io/library/multi:2"]
            try Data(try ImageStore.encode(Index(manifests: [entry]))).write(to: URL(fileURLWithPath: layout + "/index.json"))
        }
        try writeIndex([Platform(architecture: "s390x"), .current])
        let other = fixture.otherStore("other")
        #expect(try other.load(layout).map(\.id) == [imported.id])
        #expect(try other.resolve("multi:2").manifestDigest == imported.manifestDigest)

        try writeIndex([Platform(architecture: "s390x"), Platform(architecture: "ppc64le")])
        #expect {
            try fixture.otherStore("third").load(layout)
        } throws: { error in
            "\(error)".contains("linux/s390x, linux/ppc64le")
        }
    }

    @Test("concurrent skiff processes never lose a name: twenty parallel tags all land")
    func concurrentTags() throws {
        let fixture = try Fixture()
        defer { fixture.cleanUp() }
        let skiff = try Host.executable("skiff")
        let root = fixture.store.root
        _ = try fixture.store.importTar(Self.layerFixtures + "/base.tar.gz", as: try Reference(parsing: "race:0"))
        let processes = try (1...20).map { number in
            try Started(skiff, ["--root", root, "tag", "race:0", "race:\(number)"])
        }
        let outcomes = processes.map { $0.finish() }
        #expect(outcomes.allSatisfy { $0.status == 0 }, "\(outcomes.map(\.stderr))")
        let tags = try fixture.store.resolve("race:0").references.compactMap(\.tag)
        #expect(Set(tags) == Set((0...20).map { "\($0)" }), "every name written under the lock survives")
    }

    /// Docker and Skiff exchange images both ways: a dockerd of the test's own (temporary data
    /// root, exec root and socket; no bridge, no iptables; vfs storage).
    @Suite(
        "docker save and docker load interop", .serialized,
        .enabled(if: Host.isRoot && Tool.find("dockerd") != nil && Tool.find("docker") != nil, "needs root and docker.io"))
    struct DockerInterop {
        @Test("docker save output loads into Skiff with Docker's image id; Skiff's save loads into docker, which runs it")
        func dockerSaveAndLoad() throws {
            let fixture = try Fixture()
            let dockerd = try TestDockerDaemon()
            defer {
                dockerd.stop()
                fixture.cleanUp()
            }
            func run(_ arguments: [String]) throws -> Tool.Result { try dockerd.run(arguments) }

            // Docker -> Skiff.
            let tarball = try ImageTests.sampleTar(in: fixture.scratch.path)
            #expect(try run(["import", tarball, "from-docker:1"]).status == 0)
            let dockerID = try run(["image", "inspect", "--format", "{{.Id}}", "from-docker:1"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let saved = fixture.scratch.path + "/docker-save.tar"
            let save = try run(["save", "-o", saved, "from-docker:1"])
            try #require(save.status == 0, "\(save.errorOutput)")
            let loaded = try fixture.store.load(saved)
            #expect(try loaded.map(\.id.description) == [dockerID] && loaded.first?.references == [Reference(parsing: "from-docker:1")])
            #expect(try fixture.store.unpack(try fixture.store.resolve("from-docker:1")).count == 1)

            // Skiff -> Docker: a plain layer made by Docker, and the gzip layers of the fixtures.
            try fixture.store.tag("from-docker:1", as: "from-skiff:1")
            _ = try fixture.store.load(try ImageTests.twoLayerArchive(in: fixture.scratch.path, name: "two"))
            let archive = fixture.scratch.path + "/skiff-save.tar"
            try fixture.store.save(["from-skiff:1", "fixtures/two:1"], to: archive)
            let load = try run(["load", "-i", archive])
            #expect(load.status == 0, "\(load.errorOutput)")
            #expect(
                load.output.contains("Loaded image: from-skiff:1") && load.output.contains("Loaded image: fixtures/two:1"), "\(load.output)"
            )
            let twoID = try fixture.store.resolve("fixtures/two:1").id
            #expect(try run(["image", "inspect", "--format", "{{.Id}}", "fixtures/two:1"]).output == "\(twoID)\n")
            #expect(try run(["image", "inspect", "--format", "{{.Id}}", "from-skiff:1"]).output == "\(dockerID)\n")
            // The fixtures have no shell: read what docker stacked with docker cp.
            let created = try run(["create", "--network", "none", "fixtures/two:1", "/bin/sh"])
            #expect(created.status == 0, "\(created.errorOutput)")
            let container = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let copied = fixture.scratch.path + "/app.conf"
            #expect(try run(["cp", "\(container):/etc/app.conf", copied]).status == 0)
            #expect(try String(contentsOfFile: copied, encoding: .utf8).contains("version=2"), "docker stacked Skiff's two layers")
            #expect(try run(["cp", "\(container):/data/old", fixture.scratch.path + "/old"]).status != 0, "the whiteout hides data/old")
            #expect(try run(["rm", container]).status == 0)
            let hello = try run(["run", "--rm", "--network", "none", "from-skiff:1", "/bin/sh", "-c", "echo hello from skiff"])
            #expect(hello.status == 0 && hello.output == "hello from skiff\n", "\(hello.errorOutput)")
        }
    }
}

/// A value shared with a store's `layersInUse` closure.
final class SharedValue<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
