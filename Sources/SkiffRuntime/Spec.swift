import Foundation
import SkiffSecurity

/// The OCI runtime specification's config.json (runtime-spec 1.x, config.md and config-linux.md),
/// the fields Skiff reads. Unknown fields are ignored, as the spec requires.
public struct Spec: Codable, Equatable, Sendable {
    public struct Process: Codable, Equatable, Sendable {
        public struct User: Codable, Equatable, Sendable {
            public var uid: UInt32
            public var gid: UInt32
            public var umask: UInt32?
            public var additionalGids: [UInt32]?
        }
        public struct Capabilities: Codable, Equatable, Sendable {
            public var bounding: [String]?
            public var effective: [String]?
            public var inheritable: [String]?
            public var permitted: [String]?
            public var ambient: [String]?
        }
        public struct Rlimit: Codable, Equatable, Sendable {
            public var type: String
            public var hard: UInt64
            public var soft: UInt64
        }
        public var terminal: Bool?
        public var user: User
        public var args: [String]?
        public var env: [String]?
        public var cwd: String
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?
        public var oomScoreAdj: Int?
    }

    public struct Root: Codable, Equatable, Sendable {
        public var path: String
        public var readonly: Bool?
    }

    public struct Mount: Codable, Equatable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
    }

    public struct Hook: Codable, Equatable, Sendable {
        public var path: String
        public var args: [String]?
        public var env: [String]?
        public var timeout: Int?
    }

    public struct Hooks: Codable, Equatable, Sendable {
        public var prestart: [Hook]?
        public var createRuntime: [Hook]?
        public var createContainer: [Hook]?
        public var startContainer: [Hook]?
        public var poststart: [Hook]?
        public var poststop: [Hook]?
    }

    public struct Linux: Codable, Equatable, Sendable {
        public struct Namespace: Codable, Equatable, Sendable {
            public var type: String
            public var path: String?
        }
        public struct IDMapping: Codable, Equatable, Sendable {
            public var containerID: UInt32
            public var hostID: UInt32
            public var size: UInt32
        }
        public struct Resources: Codable, Equatable, Sendable {
            public struct Memory: Codable, Equatable, Sendable {
                public var limit: Int64?
                public var swap: Int64?
            }
            public struct CPU: Codable, Equatable, Sendable {
                public var shares: UInt64?
                public var quota: Int64?
                public var period: UInt64?
                public var cpus: String?
            }
            public struct Pids: Codable, Equatable, Sendable {
                public var limit: Int64
            }
            public struct Device: Codable, Equatable, Sendable {
                public var allow: Bool
                public var type: String?
                public var major: Int64?
                public var minor: Int64?
                public var access: String?
            }
            public var memory: Memory?
            public var cpu: CPU?
            public var pids: Pids?
            public var devices: [Device]?
        }
        public var namespaces: [Namespace]?
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var resources: Resources?
        public var cgroupsPath: String?
        public var sysctl: [String: String]?
        public var seccomp: SeccompProfile?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
        public var rootfsPropagation: String?
    }

    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var hooks: Hooks?
    public var linux: Linux?
    public var annotations: [String: String]?
}
