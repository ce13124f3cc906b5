// swift-tools-version: 6.0
// Skiff: a container lab. The module graph follows the lesson order (shared/DESIGN.md §1–2):
// CSkiff <- SkiffKernel <- one module per isolation layer <- lessons.
import PackageDescription

/// Lessons that exist so far, in order; each builds `lessonNN-topic` from `lessons/NN-topic/`.
let lessons: [(folder: String, layers: [Target.Dependency])] = [
    ("01-uts", ["SkiffNamespaces"]),
    ("02-pid", ["SkiffNamespaces", "SkiffRootfs"]),
    ("03-mount", ["SkiffNamespaces", "SkiffRootfs"]),
    ("04-ipc", ["SkiffNamespaces", "SkiffRootfs"]),
    ("05-user", ["SkiffNamespaces", "SkiffRootfs"]),
    ("06-net", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork"]),
    ("07-cgroups", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups"]),
    ("08-union", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers"]),
    ("09-init-layer", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers"]),
    ("10-veth-bridge", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers"]),
    ("11-security", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers", "SkiffSecurity"]),
    ("12-images", ["SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers", "SkiffSecurity", "SkiffImage"]),
]

let package = Package(
    name: "skiff",
    platforms: [.macOS(.v13)],
    products: lessons.map { .executable(name: "lesson" + $0.folder, targets: ["lesson" + $0.folder]) }
        + [.executable(name: "skiff-runtime", targets: ["skiff-runtime"]), .executable(name: "skiff", targets: ["skiff"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C, only what Swift cannot do: clone, setns, pivot_root, signal forwarding, wait macros.
        .target(name: "CSkiff"),
        // System libraries, used by the security (seccomp, capabilities) and image (archive) layers.
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        // HTTP(S) for the registry client, with per-registry CA files (see Sources/CCurl/shim.h).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),

        .target(name: "SkiffKernel", dependencies: ["CSkiff"]),
        .target(name: "SkiffNamespaces", dependencies: ["SkiffKernel"]),
        .target(name: "SkiffRootfs", dependencies: ["SkiffKernel"]),
        .target(name: "SkiffNetwork", dependencies: ["SkiffKernel"]),
        .target(name: "SkiffCgroups", dependencies: ["SkiffKernel"]),
        .target(name: "SkiffSecurity", dependencies: ["SkiffKernel", "SkiffJSON", "CCap", "CSeccomp"]),
        // Decoding the JSON users hand in (profiles, config.json, image configs) with errors that name the field.
        .target(name: "SkiffJSON", dependencies: ["SkiffKernel"]),
        // OCI images: content store, manifests and configs, image layouts and docker archives, registries.
        .target(
            name: "SkiffImage",
            dependencies: [
                "SkiffKernel", "SkiffJSON", "SkiffLayers", "CArchive", "CCurl", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The one place that composes the layers: an OCI bundle -> ContainerPlan -> a container.
        .target(
            name: "SkiffRuntime",
            dependencies: [
                "SkiffKernel", "SkiffNamespaces", "SkiffRootfs", "SkiffCgroups", "SkiffNetwork", "SkiffSecurity", "SkiffJSON",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "SkiffLayers",
            dependencies: ["SkiffKernel", "CArchive", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The engine on top of the runtime: images become bundles, containers are kept and run.
        .target(
            name: "SkiffEngine",
            dependencies: ["SkiffKernel", "SkiffImage", "SkiffLayers", "SkiffRootfs", "SkiffRuntime", "SkiffSecurity"]
        ),
        .target(
            name: "SkiffCommands",
            dependencies: [
                "SkiffKernel", "SkiffJSON", "SkiffRuntime", "SkiffSecurity", "SkiffImage", "SkiffEngine", "SkiffRootfs",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "skiff-runtime", dependencies: ["SkiffCommands"]),
        // The engine's command line (images now; containers with the engine).
        .executableTarget(name: "skiff", dependencies: ["SkiffCommands"]),
        // The lesson contract shared by every lesson executable: --explain, --step, -- CMD, exit codes.
        .target(
            name: "SkiffLesson",
            dependencies: ["SkiffKernel", "SkiffCgroups", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        .testTarget(
            name: "SkiffTests",
            dependencies: [
                "SkiffKernel", "SkiffNamespaces", "SkiffRootfs", "SkiffNetwork", "SkiffCgroups", "SkiffLayers", "SkiffSecurity",
                "SkiffRuntime", "SkiffCommands", "SkiffLesson", "SkiffJSON", "SkiffImage", "SkiffEngine", "CArchive",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
        + lessons.map { lesson in
            .executableTarget(
                name: "lesson" + lesson.folder,
                dependencies: ["SkiffKernel", "SkiffLesson"] + lesson.layers
                    + [.product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "lessons/" + lesson.folder,
                exclude: ["README.md"]
            )
        }
)
