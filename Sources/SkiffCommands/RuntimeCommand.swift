import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffJSON
import SkiffKernel
import SkiffRuntime
import SkiffSecurity

/// `skiff-runtime`: an OCI runtime with runc's command line, so that containerd and Docker can
/// drive it (`--add-runtime skiff=/usr/local/bin/skiff-runtime`).
public struct RuntimeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "skiff-runtime",
        abstract: "An OCI runtime: runs containers from OCI bundles, with runc's commands.",
        subcommands: [
            SpecCommand.self, CreateCommand.self, StartCommand.self, RunCommand.self, ExecCommand.self, StateCommand.self, KillCommand.self,
            PauseCommand.self, ResumeCommand.self, UpdateCommand.self,
            DeleteCommand.self, ListCommand.self, PsCommand.self, FeaturesCommand.self,
        ])

    @OptionGroup var global: RuntimeOptions

    public init() {}
}

/// runc's global options, given before the command (`skiff-runtime --root /run/x create ...`).
public struct RuntimeOptions: ParsableArguments {
    @Option(help: "The state directory.") var root = StateStore.defaultRoot
    @Option(help: "Write errors to this file as well (containerd reads it).") var log: String?
    @Option(help: "The log's format: text or json.") var logFormat = "text"
    @Flag(help: "Use systemd for cgroups (not supported: refused clearly).") var systemdCgroup = false
    @Flag(help: "Narrate every kernel call, as the lessons' --explain does.") var debug = false

    public init() {}

    var runtime: Runtime {
        Runtime(store: StateStore(root: root), kernel: Kernel(narrator: Narrator(mode: debug ? .explain : .silent)))
    }

    /// Runs `body`, turning errors into runc's convention: a message on stderr (and in the log),
    /// exit status 1.
    func perform(_ body: () throws -> Void) throws {
        do {
            guard !systemdCgroup else {
                throw SkiffError(.invalidInput, "--systemd-cgroup is not supported: use cgroupfs paths (linux.cgroupsPath \"/NAME/ID\")")
            }
            try body()
        } catch let error as ExitCode {
            throw error
        } catch {
            let message = "\(error)"
            printToStandardError("skiff-runtime: \(message)")
            if let log { append(message, to: log) }
            throw ExitCode(1)
        }
    }

    private func append(_ message: String, to path: String) {
        let line: String
        if logFormat == "json" {
            let fields = ["level": "error", "msg": message, "time": ISO8601DateFormatter().string(from: Date())]
            line = String(decoding: (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
        } else {
            line = "level=error msg=\"\(message)\""
        }
        guard
            let handle = FileHandle(forWritingAtPath: path)
                ?? {
                    _ = FileManager.default.createFile(atPath: path, contents: nil)
                    return FileHandle(forWritingAtPath: path)
                }()
        else { return }
        handle.seekToEndOfFile()
        handle.write(Data((line + "\n").utf8))
        try? handle.close()
    }
}

struct SpecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "spec", abstract: "Write a default config.json in the bundle.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "The bundle directory.") var bundle = "."

    func run() throws {
        try global.perform {
            let path = Files.absolute(bundle) + "/config.json"
            guard !Files.exists(path) else { throw SkiffError(.invalidInput, "\(path) exists already: remove it first") }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(DefaultSpec.make()).write(to: URL(fileURLWithPath: path))
        }
    }
}

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a container that waits for start.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "The bundle directory.") var bundle = "."
    @Option(help: "Write the container's pid here.") var pidFile: String?
    @Option(help: "A socket for the pty master (terminal mode).") var consoleSocket: String?
    @Flag(help: "Accepted for compatibility; pivot_root is always used.") var noPivot = false
    @Flag(help: "Accepted for compatibility.") var noNewKeyring = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform {
            let launched = try global.runtime.create(id: id, bundle: bundle, consoleSocket: consoleSocket)
            launched.process.release()
            if let pidFile { try writePID(launched.state.pid, to: pidFile) }
        }
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a created container.")
    @OptionGroup var global: RuntimeOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform { try global.runtime.start(id: id) }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Create, start, wait for and delete a container.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "The bundle directory.") var bundle = "."
    @Flag(name: [.short, .long], help: "Return once it runs; delete it later.") var detach = false
    @Option(help: "Write the container's pid here.") var pidFile: String?
    @Option(help: "A socket for the pty master (terminal mode).") var consoleSocket: String?
    @Argument(help: "The container id.") var id: String

    func run() throws {
        var code: Int32 = 0
        try global.perform {
            let (status, state) = try global.runtime.run(id: id, bundle: bundle, detach: detach, consoleSocket: consoleSocket)
            if let pidFile { try writePID(state.pid, to: pidFile) }
            code = status?.code ?? 0
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run another process in a running container.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "The process as OCI JSON (what containerd and Docker pass).") var process: String?
    @Flag(name: [.short, .long], help: "Return once the process runs.") var detach = false
    @Option(help: "Write the process's pid here.") var pidFile: String?
    @Flag(name: [.short, .long], help: "A terminal; its master goes to --console-socket.") var tty = false
    @Option(help: "A socket for the pty master (terminal mode).") var consoleSocket: String?
    @Option(name: [.short, .long], help: "An environment variable NAME=VALUE; repeat.") var env: [String] = []
    @Option(name: .long, help: "The working directory.") var cwd: String?
    @Option(name: [.short, .long], help: "UID[:GID] to run as.") var user: String?
    @Argument(help: "The container id.") var id: String
    @Argument(parsing: .captureForPassthrough, help: "The command, unless --process gives it.") var command: [String] = []

    func run() throws {
        var code: Int32 = 0
        try global.perform {
            let runtime = global.runtime
            var spec: Spec.Process
            if let process {
                guard let data = FileManager.default.contents(atPath: process) else {
                    throw SkiffError(.invalidInput, "exec: cannot read \(process)")
                }
                spec = try JSONInput.decode(
                    Spec.Process.self, from: data, label: "exec: \(process)", invalid: "exec: \(process) is not an OCI process JSON")
            } else {
                // The container's own process settings, with the command given here.
                let state = try runtime.store.load(id)
                guard var base = try runtime.plan(id: id, bundle: state.bundle).0.process else {
                    throw SkiffError(.invalidInput, "exec: the container has no process")
                }
                base.args = command
                base.terminal = false
                spec = base
            }
            if tty { spec.terminal = true }
            spec.env = (spec.env ?? []) + env
            if let cwd { spec.cwd = cwd }
            if let user {
                let parts = user.split(separator: ":").map { UInt32($0) }
                guard let uid = parts.first ?? nil else { throw SkiffError(.invalidInput, "exec: --user \(user): use UID[:GID]") }
                spec.user = Spec.Process.User(uid: uid, gid: parts.count > 1 ? (parts[1] ?? 0) : 0)
            }
            let (status, pid) = try runtime.exec(id: id, process: spec, detach: detach, consoleSocket: consoleSocket)
            if let pidFile { try writePID(pid, to: pidFile) }
            code = status?.code ?? 0
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "state", abstract: "Print a container's OCI state as JSON.")
    @OptionGroup var global: RuntimeOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform { print(try global.runtime.store.load(id).ociJSON) }
    }
}

struct KillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal to a container (default SIGTERM).")
    @OptionGroup var global: RuntimeOptions
    @Flag(name: [.short, .long], help: "Signal every process of the container.") var all = false
    @Argument(help: "The container id.") var id: String
    @Argument(help: "A signal name (TERM, SIGKILL) or number.") var signal = "TERM"

    func run() throws {
        try global.perform {
            try global.runtime.kill(id: id, signal: try signalNumber(signal), all: all)
        }
    }
}

struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze every process of a container.")
    @OptionGroup var global: RuntimeOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform { try global.runtime.setPaused(id: id, true) }
    }
}

struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Thaw a paused container.")
    @OptionGroup var global: RuntimeOptions
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform { try global.runtime.setPaused(id: id, false) }
    }
}

struct UpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "update", abstract: "Change a container's resource limits.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "linux.resources as JSON, in a file or - for standard input.") var resources: String?
    @Option(help: "Memory limit in bytes.") var memory: Int64?
    @Option(help: "CPU CFS quota in microseconds.") var cpuQuota: Int64?
    @Option(help: "CPU CFS period in microseconds.") var cpuPeriod: UInt64?
    @Option(help: "CPU shares.") var cpuShare: UInt64?
    @Option(help: "CPUs to run on, e.g. 0-1.") var cpusetCpus: String?
    @Option(help: "The most processes.") var pidsLimit: Int64?
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform {
            var update = Spec.Linux.Resources()
            if let resources {
                let data =
                    resources == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: resources)
                guard let data else { throw SkiffError(.invalidInput, "update: cannot read --resources \(resources)") }
                update = try JSONInput.decode(
                    Spec.Linux.Resources.self, from: data, label: "update: --resources",
                    invalid: "update: --resources \(resources) is not linux.resources JSON")
            }
            if let memory { update.memory = .init(limit: memory) }
            if cpuQuota != nil || cpuPeriod != nil || cpuShare != nil || cpusetCpus != nil {
                update.cpu = .init(
                    shares: cpuShare ?? update.cpu?.shares, quota: cpuQuota ?? update.cpu?.quota,
                    period: cpuPeriod ?? update.cpu?.period, cpus: cpusetCpus ?? update.cpu?.cpus)
            }
            if let pidsLimit { update.pids = .init(limit: pidsLimit) }
            try global.runtime.update(id: id, resources: update)
        }
    }
}

struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a stopped container (or any, with --force).")
    @OptionGroup var global: RuntimeOptions
    @Flag(name: [.short, .long], help: "Kill it first if it runs.") var force = false
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform { try global.runtime.delete(id: id, force: force) }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List containers.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "table or json.") var format = "table"
    @Flag(name: [.short, .long], help: "Only ids.") var quiet = false

    func run() throws {
        try global.perform {
            let states = global.runtime.store.list()
            if quiet { return states.forEach { print($0.id) } }
            if format == "json" {
                print("[" + states.map(\.ociJSON).joined(separator: ",") + "]")
                return
            }
            print("ID\tPID\tSTATUS\tBUNDLE\tCREATED")
            for state in states { print("\(state.id)\t\(state.pid)\t\(state.status.rawValue)\t\(state.bundle)\t\(state.created)") }
        }
    }
}

struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the processes of a container.")
    @OptionGroup var global: RuntimeOptions
    @Option(name: [.short, .long], help: "table or json.") var format = "table"
    @Argument(help: "The container id.") var id: String

    func run() throws {
        try global.perform {
            let pids = global.runtime.processes(of: try global.runtime.store.load(id))
            if format == "json" { return print("[" + pids.map(String.init).joined(separator: ",") + "]") }
            print("PID")
            pids.forEach { print($0) }
        }
    }
}

struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "features", abstract: "Print what this runtime supports, as JSON.")
    @OptionGroup var global: RuntimeOptions

    func run() throws {
        let features: [String: Any] = [
            "ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0",
            "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
            "mountOptions": ContainerPlanOptions.mountOptions,
            "linux": [
                "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
                "capabilities": CapabilitySet.all.names.map { "CAP_" + $0.uppercased() },
                "cgroup": ["v1": true, "v2": true, "systemd": false, "systemdUser": false],
                "seccomp": [
                    "enabled": true,
                    "actions": [
                        "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                        "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
                    ],
                ],
            ],
        ]
        let data = try JSONSerialization.data(withJSONObject: features, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

func writePID(_ pid: Int32, to path: String) throws {
    try "\(pid)".write(toFile: path, atomically: true, encoding: .utf8)
}

/// `TERM`, `SIGTERM`, `15`, as runc accepts them.
func signalNumber(_ text: String) throws -> Int32 {
    if let number = Int32(text), (1...64).contains(number) { return number }
    let names: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12,
        "PIPE": 13, "ALRM": 14, "TERM": 15, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "WINCH": 28,
    ]
    let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
    guard let number = names[name] else {
        throw SkiffError(.invalidInput, "unknown signal \"\(text)\": use a name such as TERM or KILL, or a number")
    }
    return number
}

public func printToStandardError(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    bytes.withUnsafeMutableBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
