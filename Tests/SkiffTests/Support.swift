import Foundation
import SkiffKernel
import Testing

/// Facts about the machine the tests run on, and a way to run the lesson executables.
enum Host {
    static let isRoot = geteuid() == 0

    /// The repository checkout these tests belong to.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Where SwiftPM put the executables: beside the test bundle.
    static let buildDirectory = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        .deletingLastPathComponent()

    static let sampleRootfs = repository.appendingPathComponent("rootfs-samples/build/busybox").path

    /// Real tests need root, the lesson executables and the sample rootfs.
    static let canRunLessons = isRoot

    static func executable(_ name: String) throws -> String {
        let path = buildDirectory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSetupError("\(path) is missing: run `swift build` (or `make test`) before `swift test`")
        }
        guard FileManager.default.fileExists(atPath: sampleRootfs + "/probe") else {
            throw TestSetupError("the busybox sample is missing: run `make samples`")
        }
        return path
    }

    /// This process's namespaces, to compare with what the probe sees inside.
    static func namespaceInodes() -> [String: String] {
        var result: [String: String] = [:]
        for name in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
            var info = stat()
            if stat("/proc/self/ns/\(name)", &info) == 0 { result[name] = String(info.st_ino) }
        }
        return result
    }

    static func mountTable() throws -> String {
        try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The result of one finished process.
struct Outcome {
    let status: Int32
    let stdout: String
    let stderr: String
    var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
}

/// A process the test started; output goes to files so a chatty child never blocks on a pipe.
final class Started {
    let process = Process()
    private let outputURL: URL
    private let errorURL: URL

    /// Runs `executable`; with `newSession`, under setsid(1), so that it has no controlling
    /// terminal (then `--step` reads standard input, never a developer's terminal).
    init(_ executable: String, _ arguments: [String], input: String? = nil, newSession: Bool = false, environment: [String: String] = [:])
        throws
    {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-test-\(UUID().uuidString)")
        outputURL = scratch.appendingPathExtension("out")
        errorURL = scratch.appendingPathExtension("err")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: newSession ? "/usr/bin/setsid" : executable)
        process.arguments = newSession ? ["--wait", executable] + arguments : arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = try FileHandle(forWritingTo: outputURL)
        process.standardError = try FileHandle(forWritingTo: errorURL)
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// Waits, at most `seconds`, until standard output contains `text`.
    func waitForOutput(_ text: String, seconds: Double = 20) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !stdout.contains(text) {
            guard Date() < deadline, process.isRunning else {
                throw TestSetupError("no \"\(text)\" in the output; stdout: \(stdout)")
            }
            usleep(10_000)
        }
    }

    /// Waits, at most `seconds`, for the process to end; kills it if it does not.
    func finish(seconds: Double = 60) -> Outcome {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        process.waitUntilExit()
        let outcome = Outcome(
            status: process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus,
            stdout: stdout,
            stderr: (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "")
        try? FileManager.default.removeItem(at: outputURL)
        try? FileManager.default.removeItem(at: errorURL)
        return outcome
    }
}

/// Runs a lesson executable to the end.
func lesson(_ name: String, _ arguments: [String], input: String? = nil) throws -> Outcome {
    try Started(Host.executable(name), arguments, input: input).finish()
}

/// The parsed output of `/probe ns`: namespace name -> inode.
func namespaces(from outcome: Outcome) -> [String: String] {
    var result: [String: String] = [:]
    for line in outcome.lines {
        let parts = line.split(separator: " ")
        if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
    }
    return result
}

/// A dockerd of the test's own: data, exec root, pid file and socket in a temporary directory,
/// no bridge, no iptables, vfs storage, and `runtimes` (name: path) added. Stopped, and its
/// cgroups removed, by `stop()`.
final class TestDockerDaemon {
    let root = NSTemporaryDirectory() + "skiff-docker-\(UUID().uuidString.prefix(8))"
    private let daemon: Started
    private let docker: String
    private var socket: String { "unix://\(root)/docker.sock" }

    init(runtimes: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let runtimeEntries = runtimes.map { #""\#($0.key)": {"path": "\#($0.value)"}"# }.joined(separator: ", ")
        let config = #"{"runtimes": {\#(runtimeEntries)}, "iptables": false, "bridge": "none", "storage-driver": "vfs"}"#
        try config.write(toFile: root + "/daemon.json", atomically: false, encoding: .utf8)
        guard let dockerd = Tool.find("dockerd"), let docker = Tool.find("docker") else {
            throw TestSetupError("dockerd and docker are not installed (apt-get install docker.io)")
        }
        self.docker = docker
        daemon = try Started(
            dockerd,
            [
                "--data-root", root + "/data", "--exec-root", root + "/exec", "--pidfile", root + "/docker.pid", "-H",
                "unix://\(root)/docker.sock", "--config-file", root + "/daemon.json",
            ])
        // Bounded: 30 s for the daemon to answer.
        for _ in 0..<300 {
            if (try? run(["version"]))?.status == 0 { return }
            usleep(100_000)
        }
        stop()
        throw TestSetupError("dockerd did not start")
    }

    /// The docker CLI against this daemon.
    func run(_ arguments: [String], input: String = "") throws -> Tool.Result {
        try Tool.run(
            docker, ["-H", socket] + arguments, input: input, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=\(root)"])
    }

    func stop() {
        daemon.process.terminate()
        _ = daemon.finish(seconds: 30)
        try? FileManager.default.removeItem(atPath: root)
        for hierarchy in (try? Files.names(in: "/sys/fs/cgroup")) ?? [] { rmdir("/sys/fs/cgroup/\(hierarchy)/docker") }
    }
}
