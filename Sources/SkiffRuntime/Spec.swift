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
            public init(uid: UInt32, gid: UInt32, umask: UInt32? = nil, additionalGids: [UInt32]? = nil) {
                self.uid = uid
                self.gid = gid
                self.umask = umask
                self.additionalGids = additionalGids
            }
        }
        public struct Capabilities: Codable, Equatable, Sendable {
            public var bounding: [String]?
            public var effective: [String]?
            public var inheritable: [String]?
            public var permitted: [String]?
            public var ambient: [String]?
            public init(
                bounding: [String]? = nil, effective: [String]? = nil, inheritable: [String]? = nil, permitted: [String]? = nil,
                ambient: [String]? = nil
            ) {
                self.bounding = bounding
                self.effective = effective
                self.inheritable = inheritable
                self.permitted = permitted
                self.ambient = ambient
            }
        }
        public struct Rlimit: Codable, Equatable, Sendable {
            public var type: String
            public var hard: UInt64
            public var soft: UInt64
            public init(type: String, hard: UInt64, soft: UInt64) {
                self.type = type
                self.hard = hard
                self.soft = soft
            }
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
        public init(
            terminal: Bool? = nil, user: User, args: [String]? = nil, env: [String]? = nil, cwd: String, capabilities: Capabilities? = nil,
            rlimits: [Rlimit]? = nil, noNewPrivileges: Bool? = nil, oomScoreAdj: Int? = nil
        ) {
            self.terminal = terminal
            self.user = user
            self.args = args
            self.env = env
            self.cwd = cwd
            self.capabilities = capabilities
            self.rlimits = rlimits
            self.noNewPrivileges = noNewPrivileges
            self.oomScoreAdj = oomScoreAdj
        }
    }

    public struct Root: Codable, Equatable, Sendable {
        public var path: String
        public var readonly: Bool?
        public init(path: String, readonly: Bool? = nil) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: Codable, Equatable, Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String]?
        public init(destination: String, type: String? = nil, source: String? = nil, options: [String]? = nil) {
            self.destination = destination
            self.type = type
            self.source = source
            self.options = options
        }
    }

    public struct Hook: Codable, Equatable, Sendable {
        public var path: String
        public var args: [String]?
        public var env: [String]?
        public var timeout: Int?
        public init(path: String, args: [String]? = nil, env: [String]? = nil, timeout: Int? = nil) {
            self.path = path
            self.args = args
            self.env = env
            self.timeout = timeout
        }
    }

    public struct Hooks: Codable, Equatable, Sendable {
        public var prestart: [Hook]?
        public var createRuntime: [Hook]?
        public var createContainer: [Hook]?
        public var startContainer: [Hook]?
        public var poststart: [Hook]?
        public var poststop: [Hook]?
        public init(
            prestart: [Hook]? = nil, createRuntime: [Hook]? = nil, createContainer: [Hook]? = nil, startContainer: [Hook]? = nil,
            poststart: [Hook]? = nil, poststop: [Hook]? = nil
        ) {
            self.prestart = prestart
            self.createRuntime = createRuntime
            self.createContainer = createContainer
            self.startContainer = startContainer
            self.poststart = poststart
            self.poststop = poststop
        }
    }

    public struct Linux: Codable, Equatable, Sendable {
        public struct Namespace: Codable, Equatable, Sendable {
            public var type: String
            public var path: String?
            public init(type: String, path: String? = nil) {
                self.type = type
                self.path = path
            }
        }
        public struct IDMapping: Codable, Equatable, Sendable {
            public var containerID: UInt32
            public var hostID: UInt32
            public var size: UInt32
            public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
                self.containerID = containerID
                self.hostID = hostID
                self.size = size
            }
        }
        public struct Resources: Codable, Equatable, Sendable {
            public struct Memory: Codable, Equatable, Sendable {
                public var limit: Int64?
                public var swap: Int64?
                public init(limit: Int64? = nil, swap: Int64? = nil) {
                    self.limit = limit
                    self.swap = swap
                }
            }
            public struct CPU: Codable, Equatable, Sendable {
                public var shares: UInt64?
                public var quota: Int64?
                public var period: UInt64?
                public var cpus: String?
                public init(shares: UInt64? = nil, quota: Int64? = nil, period: UInt64? = nil, cpus: String? = nil) {
                    self.shares = shares
                    self.quota = quota
                    self.period = period
                    self.cpus = cpus
                }
            }
            public struct Pids: Codable, Equatable, Sendable {
                public var limit: Int64
                public init(limit: Int64) {
                    self.limit = limit
                }
            }
            public struct Device: Codable, Equatable, Sendable {
                public var allow: Bool
                public var type: String?
                public var major: Int64?
                public var minor: Int64?
                public var access: String?
                public init(allow: Bool, type: String? = nil, major: Int64? = nil, minor: Int64? = nil, access: String? = nil) {
                    self.allow = allow
                    self.type = type
                    self.major = major
                    self.minor = minor
                    self.access = access
                }
            }
            /// Block I/O: the proportional weight (10–1000); per-device throttles are not read.
            public struct BlockIO: Codable, Equatable, Sendable {
                public var weight: UInt16?
                public init(weight: UInt16? = nil) { self.weight = weight }
            }
            public var memory: Memory?
            public var cpu: CPU?
            public var pids: Pids?
            public var devices: [Device]?
            public var blockIO: BlockIO?
            public init(memory: Memory? = nil, cpu: CPU? = nil, pids: Pids? = nil, devices: [Device]? = nil, blockIO: BlockIO? = nil) {
                self.memory = memory
                self.cpu = cpu
                self.pids = pids
                self.devices = devices
                self.blockIO = blockIO
            }
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
        public init(
            namespaces: [Namespace]? = nil, uidMappings: [IDMapping]? = nil, gidMappings: [IDMapping]? = nil, resources: Resources? = nil,
            cgroupsPath: String? = nil, sysctl: [String: String]? = nil, seccomp: SeccompProfile? = nil, maskedPaths: [String]? = nil,
            readonlyPaths: [String]? = nil, rootfsPropagation: String? = nil
        ) {
            self.namespaces = namespaces
            self.uidMappings = uidMappings
            self.gidMappings = gidMappings
            self.resources = resources
            self.cgroupsPath = cgroupsPath
            self.sysctl = sysctl
            self.seccomp = seccomp
            self.maskedPaths = maskedPaths
            self.readonlyPaths = readonlyPaths
            self.rootfsPropagation = rootfsPropagation
        }
    }

    public var ociVersion: String
    public var process: Process?
    public var root: Root?
    public var hostname: String?
    public var mounts: [Mount]?
    public var hooks: Hooks?
    public var linux: Linux?
    public var annotations: [String: String]?
    public init(
        ociVersion: String, process: Process? = nil, root: Root? = nil, hostname: String? = nil, mounts: [Mount]? = nil,
        hooks: Hooks? = nil, linux: Linux? = nil, annotations: [String: String]? = nil
    ) {
        self.ociVersion = ociVersion
        self.process = process
        self.root = root
        self.hostname = hostname
        self.mounts = mounts
        self.hooks = hooks
        self.linux = linux
        self.annotations = annotations
    }
}
