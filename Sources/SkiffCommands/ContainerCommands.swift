import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffEngine
import SkiffImage
import SkiffKernel
import SkiffRuntime

/// `skiff ps [-a] [-q] [--no-trunc]`: Docker's columns.
struct ListContainersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers (running ones unless -a).")
    @OptionGroup var global: SkiffOptions
    @Flag(name: .shortAndLong, help: "Show every container, not only running ones.") var all = false
    @Flag(name: .shortAndLong, help: "Print only the ids.") var quiet = false
    @Flag(help: "Do not shorten ids and commands.") var noTrunc = false

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            let records = monitor.containersRepaired().filter { all || $0.status == .running }
            if quiet {
                records.forEach { print(noTrunc ? $0.id : String($0.id.prefix(12))) }
                return
            }
            var rows: [[String]] = []
            for record in records {
                var command = "\"" + (record.command.isEmpty ? "(image default)" : record.command.joined(separator: " ")) + "\""
                if !noTrunc && command.count > 22 { command = String(command.prefix(19)) + "…\"" }
                rows.append([
                    noTrunc ? record.id : String(record.id.prefix(12)), record.image, command, record.created,
                    record.statusText + (record.status == .running && monitor.isPaused(id: record.id) ? " (Paused)" : ""), record.name,
                ])
            }
            printTable(header: ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], rows: rows)
        }
    }
}

/// `skiff logs [-f] CONTAINER`: what the container wrote, kept after it ends.
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a container's output.")
    @OptionGroup var global: SkiffOptions
    @Flag(name: .shortAndLong, help: "Keep printing new output until the container ends.") var follow = false
    @Argument(help: "The container: a name or an id.") var container: String

    func run() throws {
        try global.perform {
            let containers = global.containers
            let record = try containers.resolve(container)
            let fd = open(containers.logPath(record.id), O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }  // a foreground container writes no log
            defer { close(fd) }
            while true {
                try Files.forEachChunk(of: fd, path: containers.logPath(record.id)) { chunk in
                    _ = write(STDOUT_FILENO, chunk.baseAddress, chunk.count)
                }
                guard follow, (try? containers.load(record.id))?.status == .running else { break }
                usleep(50_000)
            }
        }
    }
}

/// `skiff stop [-t N] CONTAINER...`: SIGTERM, N seconds (10), then SIGKILL.
struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop running containers.")
    @OptionGroup var global: SkiffOptions
    @Option(name: [.customShort("t"), .long], help: "Seconds to wait before SIGKILL.") var time = 10
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            for container in containers {
                let record = try monitor.containers.resolve(container)
                try monitor.stop(id: record.id, timeout: time)
                print(container)
            }
        }
    }
}

/// `skiff rm [-f] CONTAINER...`: removes stopped containers; `-f` stops running ones first.
struct RemoveContainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers.")
    @OptionGroup var global: SkiffOptions
    @Flag(name: .shortAndLong, help: "Kill and remove running containers too.") var force = false
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            _ = monitor.containersRepaired()
            for container in containers {
                let record = try monitor.containers.resolve(container)
                if record.status == .running {
                    guard force else {
                        throw SkiffError(
                            .invalidInput, "container \(container) is running: stop it first, or remove it with rm -f")
                    }
                    try monitor.stop(id: record.id, signal: SIGKILL, timeout: 0)
                }
                try monitor.containers.remove(record.id)
                print(container)
            }
        }
    }
}

/// `skiff exec [-e] [-w] [-u] CONTAINER COMMAND...`: another process in a running container.
struct ContainerExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command in a running container.")
    @OptionGroup var global: SkiffOptions
    @Option(name: [.customShort("e"), .long], help: "Set NAME=VALUE; repeat.") var env: [String] = []
    @Option(name: [.customShort("w"), .long], help: "The working directory (default: /).") var workdir: String?
    @Option(name: [.customShort("u"), .long], help: "UID[:GID] to run as (default: root).") var user: String?
    @Argument(help: "The container: a name or an id.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "The command.") var command: [String] = []

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            let record = try monitor.running(container)
            guard !command.isEmpty else { throw SkiffError(.invalidInput, "exec: give a command to run") }
            let status = try monitor.exec(id: record.id, command: command, environment: env, workingDirectory: workdir, user: user)
            throw ExitCode(status.code)
        }
    }
}

/// `skiff start CONTAINER...`: runs stopped containers again, detached, each with a new monitor;
/// their root keeps what they wrote, their log grows.
struct ContainerStartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start stopped containers again.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            _ = monitor.containersRepaired()
            for container in containers {
                let record = try monitor.containers.resolve(container)
                if record.status != .running { try startDetached(record.id, root: global.rootPath, containers: monitor.containers) }
                print(container)
            }
        }
    }
}

/// `skiff kill [-s SIGNAL] CONTAINER...`: a signal (KILL by default) to each container's process.
struct ContainerKillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal to running containers.")
    @OptionGroup var global: SkiffOptions
    @Option(name: .shortAndLong, help: "The signal: a name (TERM, SIGHUP) or a number.") var signal = "KILL"
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws {
        try global.perform {
            let number = try signalNumber(signal)
            let monitor = ContainerMonitor(root: global.rootPath)
            for container in containers {
                try monitor.signal(id: try monitor.running(container).id, number)
                print(container)
            }
        }
    }
}

/// `skiff wait CONTAINER...`: blocks until each container ends and prints its exit code.
struct ContainerWaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wait", abstract: "Wait for containers to end; print their exit codes.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws {
        try global.perform {
            let monitor = ContainerMonitor(root: global.rootPath)
            for container in containers {
                var record = try monitor.containers.resolve(container)
                // Until the monitor records the end, or is found gone (then repaired); a record
                // removed meanwhile (--rm) ends the wait too.
                while record.status == .running {
                    usleep(50_000)
                    guard let current = try? monitor.containers.load(record.id) else { break }
                    record = monitor.repaired(current)
                }
                print(record.exitCode ?? 0)
            }
        }
    }
}

/// `skiff pause` / `skiff unpause CONTAINER...`: the cgroup freezer, as Docker does.
struct ContainerPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze every process of running containers.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws { try global.perform { try setPaused(containers, true, root: global.rootPath) } }
}

struct ContainerUnpauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpause", abstract: "Thaw paused containers.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "Containers: names or ids.") var containers: [String]

    func run() throws { try global.perform { try setPaused(containers, false, root: global.rootPath) } }
}

private func setPaused(_ containers: [String], _ paused: Bool, root: String) throws {
    let monitor = ContainerMonitor(root: root)
    for container in containers {
        try monitor.setPaused(id: try monitor.running(container).id, paused)
        print(container)
    }
}

/// `skiff rename CONTAINER NEW_NAME`.
struct ContainerRenameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rename", abstract: "Give a container another name.")
    @OptionGroup var global: SkiffOptions
    @Argument(help: "The container: a name or an id.") var container: String
    @Argument(help: "Its new name.") var name: String

    func run() throws {
        try global.perform {
            let containers = global.containers
            try containers.rename(try containers.resolve(container).id, to: name)
        }
    }
}
