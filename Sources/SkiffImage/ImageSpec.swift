import SkiffKernel

/// The documents of the OCI image spec (and Docker's schema 2, which has the same shape under
/// other media types): descriptors, manifests, indexes and the image config. Field names are the
/// wire names; unknown fields are ignored when reading.
public enum MediaType {
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"

    /// Media types of a single-platform manifest.
    public static let manifests: Set<String> = [ociManifest, dockerManifest]
    /// Media types of a multi-platform index.
    public static let indexes: Set<String> = [ociIndex, dockerManifestList]
}

/// An OS and architecture an image is built for.
public struct Platform: Codable, Hashable, Sendable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var variant: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
    }

    public init(os: String = "linux", architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
    }

    /// This machine's platform, in Go's names (GOARCH), which images use.
    public static var current: Platform {
        #if arch(arm64)
            Platform(architecture: "arm64", variant: "v8")
        #else
            Platform(architecture: "amd64")
        #endif
    }

    /// Parses `linux/amd64` or `linux/arm64/v8`.
    public init(parsing text: String) throws(SkiffError) {
        let parts = text.split(separator: "/").map(String.init)
        guard parts.count == 2 || parts.count == 3 else {
            throw SkiffError(.invalidInput, "platform \"\(text)\": expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64")
        }
        self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
    }

    /// Whether an index entry for `other` can run here; a missing variant matches any.
    public func accepts(_ other: Platform) -> Bool {
        os == other.os && architecture == other.architecture
            && (variant == nil || other.variant == nil || variant == other.variant)
    }

    public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }
}

/// A pointer to content: its media type, digest and size (descriptor.md).
public struct Descriptor: Codable, Hashable, Sendable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var platform: Platform?
    public var annotations: [String: String]?
    public var urls: [String]?

    public init(mediaType: String, digest: Digest, size: Int64, platform: Platform? = nil, annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.platform = platform
        self.annotations = annotations
    }
}

/// A single-platform image: its config and its layers, bottom first (manifest.md).
public struct Manifest: Codable, Hashable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var annotations: [String: String]?

    public init(mediaType: String = MediaType.ociManifest, config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// A list of manifests, one per platform (image-index.md; Docker's manifest list).
public struct Index: Codable, Hashable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?

    public init(mediaType: String = MediaType.ociIndex, manifests: [Descriptor], annotations: [String: String]? = nil) {
        schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    /// The manifest for `platform`, or an error listing what the index offers.
    public func manifest(for platform: Platform) throws(SkiffError) -> Descriptor {
        if let match = manifests.first(where: { $0.platform.map(platform.accepts) ?? false }) { return match }
        let offered = manifests.compactMap { $0.platform?.description }
        throw SkiffError(
            .invalidInput,
            "no image for \(platform) in this index; it has: \(offered.isEmpty ? "no platforms listed" : offered.joined(separator: ", "))")
    }
}

/// The image config (config.md): how to run the image and which layers (by diff id) make it.
public struct ImageConfig: Codable, Hashable, Sendable {
    /// The part Docker calls `Config`: defaults for containers made from the image.
    public struct RunConfig: Codable, Hashable, Sendable {
        public var User: String?
        public var ExposedPorts: [String: Empty]?
        public var Env: [String]?
        public var Entrypoint: [String]?
        public var Cmd: [String]?
        public var Volumes: [String: Empty]?
        public var WorkingDir: String?
        public var Labels: [String: String]?
        public var StopSignal: String?
        public var Shell: [String]?
        public var Healthcheck: Healthcheck?

        public init() {}
    }

    /// `{}` in `ExposedPorts` and `Volumes`, whose keys carry the meaning.
    public struct Empty: Codable, Hashable, Sendable {
        public init() {}
    }

    public struct Healthcheck: Codable, Hashable, Sendable {
        public var Test: [String]?
        public var Interval: Int64?
        public var Timeout: Int64?
        public var StartPeriod: Int64?
        public var Retries: Int?

        public init(Test: [String]? = nil) { self.Test = Test }
    }

    public struct RootFS: Codable, Hashable, Sendable {
        public var type: String
        public var diff_ids: [Digest]

        public init(diffIDs: [Digest]) {
            type = "layers"
            diff_ids = diffIDs
        }
    }

    /// One step of the image's making; `empty_layer` steps changed only the config.
    public struct History: Codable, Hashable, Sendable {
        public var created: String?
        public var created_by: String?
        public var author: String?
        public var comment: String?
        public var empty_layer: Bool?

        public init(created: String? = nil, createdBy: String? = nil, comment: String? = nil, emptyLayer: Bool = false) {
            self.created = created
            created_by = createdBy
            self.comment = comment
            empty_layer = emptyLayer ? true : nil
        }
    }

    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var variant: String?
    public var config: RunConfig?
    public var rootfs: RootFS
    public var history: [History]?

    public init(
        platform: Platform = .current, config: RunConfig? = nil, diffIDs: [Digest], history: [History]? = nil, created: String? = nil
    ) {
        architecture = platform.architecture
        os = platform.os
        variant = platform.variant
        self.config = config
        rootfs = RootFS(diffIDs: diffIDs)
        self.history = history
        self.created = created
    }

    public var platform: Platform { Platform(os: os, architecture: architecture, variant: variant) }
}
