import ArgumentParser
import Foundation
import Testing

@testable import SkiffCommands
@testable import SkiffImage
@testable import SkiffKernel
@testable import SkiffLayers

/// The registry client, against Debian's `docker-registry` (distribution v2) started per test on
/// 127.0.0.1, as a private registry:2 deployment would run: plain, with htpasswd, with TLS.
@Suite("registry client")
struct RegistryTests {
    @Suite("pure: challenges, links, names, saved logins")
    struct Pure {
        @Test func parsesBearerAndBasicChallenges() {
            let challenges = AuthChallenge.parse(
                #"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull", Basic realm="x""#
            )
            #expect(challenges.count == 2)
            #expect(challenges[0].scheme == "bearer")
            #expect(challenges[0].parameters["realm"] == "https://auth.docker.io/token")
            #expect(challenges[0].parameters["scope"] == "repository:library/busybox:pull")
            #expect(challenges[1] == AuthChallenge(scheme: "basic", parameters: ["realm": "x"]))
            #expect(AuthChallenge.parse(#"Basic realm="a \"quoted\" realm""#).first?.parameters["realm"] == #"a "quoted" realm"#)
            #expect(AuthChallenge.parse("").isEmpty)
        }

        @Test func followsNextLinks() {
            #expect(RegistryClient.nextLink(#"</v2/a/tags/list?last=b&n=1>; rel="next""#) == "/v2/a/tags/list?last=b&n=1")
            #expect(RegistryClient.nextLink(#"</v2/x>; rel="prev""#) == nil)
        }

        @Test func plainHTTPOnlyForLoopbackAndInsecureNames() {
            let settings = RegistrySettings(configDirectory: "/nonexistent", insecureRegistries: ["lab.example:5000"])
            #expect(settings.allowsPlainHTTP("localhost:5000"))
            #expect(settings.allowsPlainHTTP("127.0.0.1:5000"))
            #expect(settings.allowsPlainHTTP("[::1]:5000"))
            #expect(settings.allowsPlainHTTP("lab.example:5000"))
            #expect(!settings.allowsPlainHTTP("lab.example"))
            #expect(!settings.allowsPlainHTTP("registry.example.com"))
        }

        @Test func insecureRegistriesComeFromDaemonJSON() throws {
            let directory = try TemporaryDirectory()
            try #"{"insecure-registries": ["lab.example:5000"]}"#.write(
                toFile: directory.path + "/daemon.json", atomically: true, encoding: .utf8)
            let settings = RegistrySettings(configDirectory: directory.path)
            #expect(settings.allowsPlainHTTP("lab.example:5000"))
            #expect(!settings.allowsPlainHTTP("other.example:5000"))
        }

        @Test func savedLoginsAreDockerShapedAndPrivate() throws {
            let directory = try TemporaryDirectory()
            let store = CredentialStore(directory: directory.path + "/config")
            try store.save(Credentials(username: "ann", password: "s:cret"), for: "lab.example:5000")
            let text = try String(contentsOfFile: store.file, encoding: .utf8)
            #expect(text.contains(Data("ann:s:cret".utf8).base64EncodedString()))
            #expect(fileMode(store.file) == 0o600)
            #expect(store.credentials(for: "lab.example:5000") == Credentials(username: "ann", password: "s:cret"))
            #expect(try store.remove(for: "lab.example:5000"))
            #expect(store.credentials(for: "lab.example:5000") == nil)
            #expect(try !store.remove(for: "lab.example:5000"))
        }
    }

    @Suite(
        "real: a docker-registry on 127.0.0.1", .serialized,
        .enabled(if: Host.isRoot, "needs root (like the other real tests)"),
        .enabled(if: FileManager.default.isExecutableFile(atPath: LocalRegistry.program), "needs Debian's docker-registry (make deps)"))
    struct Real {
        @Test func pushThenPullIntoAFreshStoreWithTagsAndCatalog() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let sourceStore = ImageStore(root: scratch.path + "/source")
            let source = sourceStore.blobs
            let tree =
                FileManager.default.fileExists(atPath: Host.sampleRootfs + "/bin/busybox") ? Host.sampleRootfs : try smallTree(in: scratch)
            let image = try TestImage(from: tree, in: source, scratch: scratch)
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            let reference = try Reference(parsing: "\(registry.name)/skiff/busybox:1.0")
            let pushed = try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            #expect(pushed == image.manifestDigest)
            try client.push(
                manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source,
                to: try Reference(parsing: "\(registry.name)/skiff/busybox:latest"))

            let fresh = BlobStore(root: scratch.path + "/fresh")
            let events = EventLog()
            let pulled = try client.pull(reference, into: fresh, progress: events.record)
            #expect(pulled.manifestDigest == image.manifestDigest)
            #expect(pulled.manifestBytes == image.manifestBytes)
            #expect(pulled.config.rootfs.diff_ids == [image.layer.diffID])
            for digest in [image.manifestDigest, image.configDigest, image.layer.digest] {
                #expect(try fresh.verifiedBytes(digest) == source.verifiedBytes(digest))
            }
            #expect(events.finished.contains(image.layer.digest))

            // Again: everything is there, nothing moves.
            let again = EventLog()
            _ = try client.pull(reference, into: fresh, progress: again.record)
            #expect(again.finished.isEmpty && again.skipped.contains(image.layer.digest))

            let byDigest = try client.pull(
                Reference(registry: registry.name, repository: "skiff/busybox", tag: nil, digest: image.manifestDigest),
                into: BlobStore(root: scratch.path + "/by-digest"))
            #expect(byDigest.manifestDigest == image.manifestDigest)

            #expect(try client.tags(repository: "skiff/busybox", pageSize: 1).sorted() == ["1.0", "latest"])
            #expect(try client.catalog().contains("skiff/busybox"))
            let missing = try #require(throws: SkiffError.self) {
                try client.pull(try Reference(parsing: "\(registry.name)/skiff/busybox:nope"), into: fresh)
            }
            #expect(missing.message.contains("not found in \(registry.name)") && missing.message.contains("manifest unknown"))

            // The commands: `skiff push` of a named image of the store, `skiff pull` into another store.
            let config = scratch.path + "/config"
            let cliName = "\(registry.name)/cli/app:2"
            try sourceStore.add(manifest: image.manifestDigest, references: [try Reference(parsing: cliName)])
            try Push.parse(["--root", sourceStore.root, "--config", config, cliName]).run()
            let cliStore = ImageStore(root: scratch.path + "/cli")
            try Pull.parse(["--root", cliStore.root, "--config", config, cliName]).run()
            #expect(try cliStore.blobs.verifiedBytes(image.layer.digest) == source.verifiedBytes(image.layer.digest))
            #expect(try cliStore.resolve(cliName).manifestDigest == image.manifestDigest, "the pulled image is named in the store")
        }

        @Test func chunkedPushAndCrossRepositoryMount() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            // Random bytes do not compress: the layer stays larger than three chunks.
            let tree = try smallTree(in: scratch, randomBytes: 300_000)
            let image = try TestImage(from: tree, in: source, scratch: scratch)
            #expect(image.layer.size > 3 * 64 * 1024)
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            try client.push(
                manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source,
                to: try Reference(parsing: "\(registry.name)/team/app:v1"), chunkSize: 64 * 1024)
            #expect(registry.log.components(separatedBy: "http.request.method=PATCH").count - 1 >= 4)

            let mounted = EventLog()
            try client.push(
                manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source,
                to: try Reference(parsing: "\(registry.name)/team/copy:v1"), mountFrom: "team/app", progress: mounted.record)
            #expect(mounted.reasons[image.layer.digest] == "mounted from team/app")

            let fresh = BlobStore(root: scratch.path + "/fresh")
            let pulled = try client.pull(try Reference(parsing: "\(registry.name)/team/copy:v1"), into: fresh)
            #expect(pulled.manifestDigest == image.manifestDigest)
            #expect(try fresh.verifiedBytes(image.layer.digest) == source.verifiedBytes(image.layer.digest))
        }

        @Test func concurrentPullsOfOneImageIntoOneStoreBothSucceed() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch, randomBytes: 2_000_000), in: source, scratch: scratch)
            let name = "\(registry.name)/race/app:1"
            try RegistryClient(registry: registry.name).push(
                manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: try Reference(parsing: name))
            let root = scratch.path + "/shared"
            let pulls = try (0..<4).map { _ in try Started(Host.executable("skiff"), ["--root", root, "pull", name]) }
            for pull in pulls {
                let outcome = pull.finish()
                #expect(outcome.status == 0, "\(outcome.stderr)")
            }
            let store = ImageStore(root: root)
            #expect(try store.resolve(name).manifestDigest == image.manifestDigest)
            #expect(try store.blobs.verifiedBytes(image.layer.digest) == source.verifiedBytes(image.layer.digest))
            #expect(try Files.names(in: root + "/images/ingest").isEmpty, "no partial download is left")
        }

        @Test func anIndexPullsThisPlatformsManifest() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let index = Index(manifests: [
                Descriptor(
                    mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: Int64(image.manifestBytes.count),
                    platform: .current)
            ])
            let indexBytes = try [UInt8](JSONEncoder().encode(index))
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            let reference = try Reference(parsing: "\(registry.name)/multi/app:1")
            let indexDigest = try client.push(manifestBytes: indexBytes, mediaType: MediaType.ociIndex, from: source, to: reference)

            let fresh = BlobStore(root: scratch.path + "/fresh")
            let pulled = try client.pull(reference, into: fresh)
            #expect(pulled.indexDigest == indexDigest)
            #expect(pulled.manifestDigest == image.manifestDigest)
            #expect(try fresh.verifiedBytes(indexDigest) == indexBytes)
            let other = try #require(throws: SkiffError.self) {
                try client.pull(reference, into: fresh, platform: Platform(architecture: "s390x"))
            }
            #expect(other.message.contains("no image for linux/s390x") && other.message.contains(Platform.current.description))
        }

        @Test func aCorruptedBlobIsDetectedAndNotStored() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            let reference = try Reference(parsing: "\(registry.name)/bad/image:1")
            try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            // Flip one byte of the layer in the registry's own storage: same size, other content.
            let stored =
                registry.storage + "/docker/registry/v2/blobs/sha256/\(image.layer.digest.hex.prefix(2))/\(image.layer.digest.hex)/data"
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: stored)))
            bytes[bytes.count / 2] ^= 0xFF
            try Data(bytes).write(to: URL(fileURLWithPath: stored))

            let fresh = BlobStore(root: scratch.path + "/fresh")
            let error = try #require(throws: SkiffError.self) { try client.pull(reference, into: fresh) }
            #expect(error.message.contains("corrupt") && error.message.contains(registry.name))
            #expect(!fresh.contains(image.layer.digest))
            #expect(!FileManager.default.fileExists(atPath: fresh.partialPath(of: image.layer.digest)))
        }

        @Test func anInterruptedPullResumesWithARangeRequest() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch, randomBytes: 200_000), in: source, scratch: scratch)
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            let reference = try Reference(parsing: "\(registry.name)/resume/image:1")
            try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)

            // What an interrupted pull leaves: the first part of the layer in the ingest directory.
            let fresh = BlobStore(root: scratch.path + "/fresh")
            try fresh.prepareIngest()
            let layer = try source.verifiedBytes(image.layer.digest)
            let half = layer.count / 2
            try Data(layer.prefix(half)).write(to: URL(fileURLWithPath: fresh.partialPath(of: image.layer.digest)))
            let events = EventLog()
            _ = try client.pull(reference, into: fresh, progress: events.record)
            #expect(events.resumedAt[image.layer.digest] == Int64(half))
            #expect(try fresh.verifiedBytes(image.layer.digest) == layer)
            // The registry sent only the rest: a 206 of the missing bytes.
            #expect(registry.log.contains("http.response.status=206"))
            #expect(registry.log.contains("http.response.written=\(layer.count - half)"))
        }

        @Test func htpasswdBasicAuthAndLogin() throws {
            let scratch = try TemporaryDirectory()
            let htpasswd = try Tool.run("/usr/bin/htpasswd", ["-Bbn", "ann", "right-pass"])
            #expect(htpasswd.status == 0)
            try htpasswd.output.write(toFile: scratch.path + "/htpasswd", atomically: true, encoding: .utf8)
            let registry = try LocalRegistry(htpasswd: scratch.path + "/htpasswd")
            defer { registry.stop() }
            let config = scratch.path + "/config"
            let settings = RegistrySettings(configDirectory: config)
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let reference = try Reference(parsing: "\(registry.name)/private/app:1")

            let anonymous = try #require(throws: SkiffError.self) {
                try RegistryClient(registry: registry.name, settings: settings)
                    .push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            }
            #expect(anonymous.message.contains("unauthorized") && anonymous.message.contains("run skiff login \(registry.name)"))

            let wrong = try Login.parse(["--config", config, "-u", "ann", "-p", "wrong-pass", registry.name])
            let refused = try #require(throws: ExitCode.self) { try wrong.run() }
            #expect(refused.rawValue == 125)
            let refusedDirectly = try #require(throws: SkiffError.self) {
                try RegistryClient(
                    registry: registry.name, settings: settings, credentials: Credentials(username: "ann", password: "wrong-pass")
                )
                .verifyLogin()
            }
            #expect(refusedDirectly.message.contains("refused the credentials of ann") && refusedDirectly.message.contains(registry.name))
            #expect(!FileManager.default.fileExists(atPath: config + "/config.json"))

            let right = try Login.parse(["--config", config, "-u", "ann", "-p", "right-pass", registry.name])
            try right.run()
            #expect(fileMode(config + "/config.json") == 0o600)
            #expect(settings.credentials.credentials(for: registry.name) == Credentials(username: "ann", password: "right-pass"))

            let client = RegistryClient(registry: registry.name, settings: settings)  // the saved login
            try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            let pulled = try client.pull(reference, into: BlobStore(root: scratch.path + "/fresh"))
            #expect(pulled.manifestDigest == image.manifestDigest)

            let logout = try Logout.parse(["--config", config, registry.name])
            try logout.run()
            #expect(settings.credentials.credentials(for: registry.name) == nil)
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: TokenServer.python), "needs python3 for the token server"))
        func bearerTokensFromATokenServerForPushPullAndLogin() throws {
            let tokens = try TokenServer(username: "ann", password: "right-pass")
            defer { tokens.stop() }
            let registry = try LocalRegistry(token: tokens.auth)
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let config = scratch.path + "/config"
            let settings = RegistrySettings(configDirectory: config)
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let name = "\(registry.name)/tokens/app:1"
            let reference = try Reference(parsing: name)
            let pushScope = "repository:tokens/app:pull,push"

            // Anonymous: the token server answers without Basic credentials but grants nothing, so
            // the registry refuses the token it issued.
            let anonymous = try #require(throws: SkiffError.self) {
                try RegistryClient(registry: registry.name, settings: settings)
                    .push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            }
            #expect(anonymous.message.contains("\(registry.name)/tokens/app"), "\(anonymous.message)")
            #expect(anonymous.message.contains("unauthorized") && anonymous.message.contains("run skiff login \(registry.name)"))
            #expect(
                tokens.requests.contains { $0.basicUser == nil && $0.scope == [pushScope] && $0.service == [TokenServer.service] },
                "\(tokens.requests)")
            #expect(registry.log.contains("insufficient scope"))

            // A wrong password: the token server's 401, with its reason, for login and for push.
            let wrong = Credentials(username: "ann", password: "wrong-pass")
            let refused = try #require(throws: SkiffError.self) {
                try RegistryClient(registry: registry.name, settings: settings, credentials: wrong).verifyLogin()
            }
            #expect(refused.message.contains("refused the credentials of ann") && refused.message.contains(registry.name))
            #expect(refused.message.contains("incorrect username or password"), "\(refused.message)")
            #expect(refused.message.contains("run skiff login \(registry.name)"))
            let refusedPush = try #require(throws: SkiffError.self) {
                try RegistryClient(registry: registry.name, settings: settings, credentials: wrong)
                    .push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            }
            #expect(refusedPush.message.contains("refused the credentials of ann") && refusedPush.message.contains("incorrect username"))
            let wrongLogin = try #require(throws: ExitCode.self) {
                try Login.parse(["--config", config, "-u", "ann", "-p", "wrong-pass", registry.name]).run()
            }
            #expect(wrongLogin.rawValue == 125)
            #expect(!FileManager.default.fileExists(atPath: config + "/config.json"))
            #expect(!registry.log.contains("auth.user.name=ann"), "no token for ann yet")

            // `skiff login`: the saved credentials go to the token server as Basic auth with the scope.
            try Login.parse(["--config", config, "-u", "ann", "-p", "right-pass", registry.name]).run()
            #expect(settings.credentials.credentials(for: registry.name) == Credentials(username: "ann", password: "right-pass"))
            let client = RegistryClient(registry: registry.name, settings: settings)
            let pushed = try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            #expect(pushed == image.manifestDigest)
            let fresh = BlobStore(root: scratch.path + "/fresh")
            let pulled = try RegistryClient(registry: registry.name, settings: settings).pull(reference, into: fresh)
            #expect(pulled.manifestDigest == image.manifestDigest)
            #expect(try fresh.verifiedBytes(image.layer.digest) == source.verifiedBytes(image.layer.digest))
            #expect(try client.tags(repository: "tokens/app") == ["1"])

            let asked = tokens.requests.filter { $0.basicUser == "ann" && $0.account == ["ann"] && $0.service == [TokenServer.service] }
            #expect(asked.contains { $0.scope == [pushScope] }, "\(tokens.requests)")
            #expect(asked.contains { $0.scope == ["repository:tokens/app:pull"] }, "\(tokens.requests)")
            #expect(tokens.requests.allSatisfy { $0.path == "/token" })
            // The registry accepted the signed tokens as ann's.
            #expect(registry.log.contains("auth.user.name=ann"))

            // `skiff pull` with the saved login, into a store of its own.
            let cliStore = ImageStore(root: scratch.path + "/cli")
            try Pull.parse(["--root", cliStore.root, "--config", config, name]).run()
            #expect(try cliStore.resolve(name).manifestDigest == image.manifestDigest)
        }

        @Test func tlsWithTheRegistrysOwnCAInCertsD() throws {
            let scratch = try TemporaryDirectory()
            let tls = try makeCertificates(in: scratch.path)
            let registry = try LocalRegistry(tls: tls)
            defer { registry.stop() }
            let config = scratch.path + "/config"
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let reference = try Reference(parsing: "\(registry.name)/secure/app:1")

            let untrusted = try #require(throws: SkiffError.self) {
                try RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: config))
                    .push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            }
            #expect(untrusted.message.contains("over https") && untrusted.message.contains("certs.d/\(registry.name)/ca.crt"))

            try FileManager.default.createDirectory(atPath: "\(config)/certs.d/\(registry.name)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: tls.ca, toPath: "\(config)/certs.d/\(registry.name)/ca.crt")
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: config))
            try client.push(manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source, to: reference)
            let pulled = try client.pull(reference, into: BlobStore(root: scratch.path + "/fresh"))
            #expect(pulled.manifestDigest == image.manifestDigest)
        }

        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "needs skopeo"))
        func skopeoReadsWhatSkiffPushesAndSkiffPullsWhatSkopeoCopies() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let source = BlobStore(root: scratch.path + "/source")
            let image = try TestImage(from: try smallTree(in: scratch), in: source, scratch: scratch)
            let client = RegistryClient(registry: registry.name, settings: RegistrySettings(configDirectory: scratch.path + "/config"))
            try client.push(
                manifestBytes: image.manifestBytes, mediaType: MediaType.ociManifest, from: source,
                to: try Reference(parsing: "\(registry.name)/interop/pushed:1"))
            let inspect = try Tool.run(
                "/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://\(registry.name)/interop/pushed:1"],
                environment: ["PATH=/usr/bin:/bin", "HOME=\(scratch.path)"])
            #expect(inspect.status == 0, "\(inspect.errorOutput)")
            #expect(inspect.output.contains(image.manifestDigest.description))
            #expect(inspect.output.contains(image.layer.digest.description))

            // The blob store is laid out as an OCI image layout's blobs: add oci-layout and an
            // index, and skopeo reads it as oci:DIR.
            let index = Index(manifests: [
                Descriptor(
                    mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: Int64(image.manifestBytes.count),
                    annotations: ["org.opencontainers.image.ref.name": "2"])
            ])
            try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: source.root + "/oci-layout"))
            try JSONEncoder().encode(index).write(to: URL(fileURLWithPath: source.root + "/index.json"))
            let copy = try Tool.run(
                "/usr/bin/skopeo",
                ["copy", "--dest-tls-verify=false", "oci:\(source.root):2", "docker://\(registry.name)/interop/copied:2"],
                environment: ["PATH=/usr/bin:/bin", "HOME=\(scratch.path)"])
            #expect(copy.status == 0, "\(copy.errorOutput)")
            let pulled = try client.pull(
                try Reference(parsing: "\(registry.name)/interop/copied:2"), into: BlobStore(root: scratch.path + "/fresh"))
            #expect(pulled.config.rootfs.diff_ids == [image.layer.diffID])
            #expect(pulled.manifest.layers.map(\.digest) == [image.layer.digest])
        }
    }
}

// MARK: - Helpers

/// A directory under /tmp, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-registry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func fileMode(_ path: String) -> mode_t {
    var info = stat()
    return stat(path, &info) == 0 ? info.st_mode & 0o777 : 0
}

/// A small tree to make a layer from; with `randomBytes`, one incompressible file of that size.
func smallTree(in scratch: TemporaryDirectory, randomBytes: Int = 0) throws -> String {
    let tree = scratch.path + "/tree-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: tree + "/etc", withIntermediateDirectories: true)
    try "hello from skiff\n".write(toFile: tree + "/etc/motd", atomically: true, encoding: .utf8)
    if randomBytes > 0 {
        try Data((0..<randomBytes).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: tree + "/random.bin"))
    }
    return tree
}

/// A one-layer image written into a blob store: layer, config and manifest.
struct TestImage {
    let layer: (digest: Digest, diffID: Digest, size: Int64)
    let configDigest: Digest
    let manifestBytes: [UInt8]
    let manifestDigest: Digest

    init(from tree: String, in store: BlobStore, scratch: TemporaryDirectory) throws {
        let file = try LayerCreator.create(from: tree, to: scratch.path + "/layer-\(UUID().uuidString.prefix(8)).tar.gz")
        let digest = try Digest(file.digest)
        let diffID = try Digest(file.diffID)
        try store.prepareIngest()
        try FileManager.default.moveItem(atPath: file.path, toPath: store.partialPath(of: digest))
        try store.ingest(file: store.partialPath(of: digest), expected: digest)
        layer = (digest, diffID, Int64(file.size))
        var run = ImageConfig.RunConfig()
        run.Cmd = ["/bin/sh"]
        let config = ImageConfig(config: run, diffIDs: [diffID], created: "2026-01-01T00:00:00Z")
        let configBytes = try [UInt8](JSONEncoder().encode(config))
        configDigest = try store.put(configBytes)
        let manifest = Manifest(
            config: Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count)),
            layers: [Descriptor(mediaType: MediaType.ociLayerGzip, digest: digest, size: Int64(file.size))])
        manifestBytes = try [UInt8](JSONEncoder().encode(manifest))
        manifestDigest = try store.put(manifestBytes)
    }
}

/// Collects blob events from the transfer threads.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var finished: Set<Digest> = []
    private(set) var skipped: Set<Digest> = []
    private(set) var reasons: [Digest: String] = [:]
    private(set) var resumedAt: [Digest: Int64] = [:]

    var record: BlobProgress { { [self] event in add(event) } }

    private func add(_ event: BlobEvent) {
        lock.lock()
        defer { lock.unlock() }
        switch event {
        case .started(let blob, let done): if done > 0 { resumedAt[blob.digest] = done }
        case .progressed: break
        case .skipped(let blob, let reason):
            skipped.insert(blob.digest)
            reasons[blob.digest] = reason
        case .finished(let blob): finished.insert(blob.digest)
        }
    }
}

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost, made with openssl.
func makeCertificates(in directory: String) throws -> (ca: String, certificate: String, key: String) {
    let openssl = "/usr/bin/openssl"
    let ca = directory + "/ca.crt"
    let caKey = directory + "/ca.key"
    let key = directory + "/server.key"
    let request = directory + "/server.csr"
    let certificate = directory + "/server.crt"
    let extensions = directory + "/server.ext"
    try
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        .write(toFile: extensions, atomically: true, encoding: .utf8)
    let steps: [[String]] = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=skiff test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
        [
            "x509", "-req", "-in", request, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", certificate, "-days", "2", "-extfile",
            extensions,
        ],
    ]
    for step in steps {
        let result = try Tool.run(openssl, step)
        guard result.status == 0 else { throw TestSetupError("openssl \(step[0]) failed: \(result.errorOutput)") }
    }
    return (ca, certificate, key)
}

/// Debian's docker-registry serving a temp storage directory on 127.0.0.1 and a free port; its
/// log (level info: one line per request) is kept for the tests to read. `stop` ends it by pid.
final class LocalRegistry {
    static let program = "/usr/bin/docker-registry"
    let directory: TemporaryDirectory
    let port: UInt16
    let process = Process()
    var name: String { "127.0.0.1:\(port)" }
    var storage: String { directory.path + "/storage" }
    var log: String { (try? String(contentsOfFile: directory.path + "/registry.log", encoding: .utf8)) ?? "" }

    init(htpasswd: String? = nil, tls: (ca: String, certificate: String, key: String)? = nil, token: RegistryTokenAuth? = nil) throws {
        directory = try TemporaryDirectory()
        port = try freePort()
        var config = """
            version: 0.1
            log:
              level: info
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(directory.path)/storage
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
              secret: skiff-test-secret

            """
        if let tls {
            config += "  tls:\n    certificate: \(tls.certificate)\n    key: \(tls.key)\n"
        }
        if let htpasswd {
            config += "auth:\n  htpasswd:\n    realm: skiff-test\n    path: \(htpasswd)\n"
        }
        if let token {
            config +=
                "auth:\n  token:\n    realm: \(token.realm)\n    service: \(token.service)\n    issuer: \(token.issuer)\n    rootcertbundle: \(token.rootCertificates)\n"
        }
        try config.write(toFile: directory.path + "/config.yml", atomically: true, encoding: .utf8)
        let logFile = directory.path + "/registry.log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.program)
        process.arguments = ["serve", directory.path + "/config.yml"]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        try process.run()
        // Ready when the port accepts connections; bounded.
        let deadline = Date().addingTimeInterval(15)
        while !canConnect(port) {
            guard Date() < deadline, process.isRunning else {
                stop()
                throw TestSetupError("docker-registry did not start on \(port): \(log)")
            }
            usleep(20_000)
        }
    }

    func stop() { stopByPID(process) }

    deinit { stop() }
}

/// Ends a process the test started: SIGTERM to its pid, a bounded wait, then SIGKILL.
func stopByPID(_ process: Process) {
    guard process.isRunning else { return }
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date().addingTimeInterval(5)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

/// What a registry with `auth: token` is told: send clients to `realm` for tokens naming
/// `service` as audience and `issuer` as issuer, signed by a key whose certificate is in the
/// PEM file `rootCertificates`.
struct RegistryTokenAuth {
    var realm: String
    var service: String
    var issuer: String
    var rootCertificates: String
}

/// A bearer-token server for the distribution token flow (distribution's docs/spec/auth/jwt.md),
/// started by the test on 127.0.0.1: a Python 3 script, written into its temp dir, that checks
/// HTTP Basic credentials, grants the repository actions a scope asks for (none to anonymous
/// callers) and signs RS256 JWTs with `openssl dgst`. Its key's self-signed certificate, made
/// with openssl, is the registry's root bundle, and rides in each token's `x5c` header. Every
/// request it gets is a JSON line in `requests.log`. `stop` ends it by pid.
final class TokenServer {
    static let python = "/usr/bin/python3"
    static let service = "skiff-test"
    static let issuer = "skiff-test-issuer"
    let directory: TemporaryDirectory
    let process = Process()
    let port: UInt16
    var auth: RegistryTokenAuth {
        RegistryTokenAuth(
            realm: "http://127.0.0.1:\(port)/token", service: Self.service, issuer: Self.issuer,
            rootCertificates: directory.path + "/token.crt")
    }

    /// One request as the server logged it; query parameters as lists, in order.
    struct Request: Decodable, CustomStringConvertible {
        var path: String
        var scope: [String]
        var service: [String]
        var account: [String]
        /// The user name of the request's Basic credentials, nil without them.
        var basicUser: String?
        var description: String { "\(path) scope=\(scope) service=\(service) account=\(account) basic=\(basicUser ?? "-")" }
    }

    var requests: [Request] {
        let text = (try? String(contentsOfFile: directory.path + "/requests.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    var output: String { (try? String(contentsOfFile: directory.path + "/server.log", encoding: .utf8)) ?? "" }

    init(username: String, password: String) throws {
        directory = try TemporaryDirectory()
        let key = directory.path + "/token.key"
        let certificate = directory.path + "/token.crt"
        let made = try Tool.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1", "-subj",
                "/CN=skiff-token",
            ])
        guard made.status == 0 else { throw TestSetupError("openssl req failed: \(made.errorOutput)") }
        let script = directory.path + "/token_server.py"
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        let logFile = directory.path + "/server.log"
        _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [script, directory.path, username, password, Self.issuer]
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        try process.run()
        // The script binds port 0 and writes the port the kernel chose; bounded wait for it.
        let portFile = directory.path + "/port"
        let deadline = Date().addingTimeInterval(15)
        var found: UInt16?
        while found == nil {
            found = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { UInt16($0) }
            guard found != nil || (Date() < deadline && process.isRunning) else {
                stopByPID(process)
                let said = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
                throw TestSetupError("the token server did not start: \(said)")
            }
            if found == nil { usleep(20_000) }
        }
        port = found ?? 0
    }

    func stop() { stopByPID(process) }

    deinit { stop() }

    /// argv: DIRECTORY USER PASSWORD ISSUER; DIRECTORY holds token.key and token.crt.
    static let script = #"""
        import base64, json, os, subprocess, sys, threading, time, uuid
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        directory, user, password, issuer = sys.argv[1:5]
        key = os.path.join(directory, "token.key")
        with open(os.path.join(directory, "token.crt")) as f:
            # The PEM body is the base64 of the DER certificate: x5c's format.
            chain = ["".join(line for line in f.read().splitlines() if not line.startswith("-----"))]
        lock = threading.Lock()

        def b64url(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        def sign(claims):
            header = {"typ": "JWT", "alg": "RS256", "x5c": chain}
            signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
            signature = subprocess.run(["/usr/bin/openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                                       capture_output=True, check=True, timeout=30).stdout
            return signing_input + "." + b64url(signature)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                given = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    try:
                        given = base64.b64decode(header[6:]).decode().split(":", 1)
                    except Exception:
                        given = ["", ""]
                entry = {"path": url.path, "scope": query.get("scope", []), "service": query.get("service", []),
                         "account": query.get("account", []), "basicUser": given[0] if given else None}
                with lock, open(os.path.join(directory, "requests.log"), "a") as log:
                    log.write(json.dumps(entry) + "\n")
                if url.path != "/token":
                    return self.answer(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
                if given is not None and given != [user, password]:
                    return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]},
                                       [("WWW-Authenticate", 'Basic realm="skiff-token"')])
                access = []
                if given is not None:
                    for scope in " ".join(query.get("scope", [])).split():
                        parts = scope.split(":")
                        if len(parts) >= 3 and parts[0] == "repository":
                            actions = [action for action in parts[-1].split(",") if action in ("pull", "push")]
                            access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": actions})
                now = int(time.time())
                claims = {"iss": issuer, "sub": given[0] if given else "", "aud": query.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
                token = sign(claims)
                self.answer(200, {"token": token, "access_token": token, "expires_in": 300})

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with open(os.path.join(directory, "port.tmp"), "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(os.path.join(directory, "port.tmp"), os.path.join(directory, "port"))
        server.serve_forever()
        """#
}

/// A port nobody listens on now: bind port 0 and let the kernel choose.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSetupError("socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw TestSetupError("cannot bind a port") }
    return UInt16(bigEndian: address.sin_port)
}

func canConnect(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
