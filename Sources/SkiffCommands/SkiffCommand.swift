import ArgumentParser
import Foundation
@preconcurrency import Glibc
import SkiffEngine
import SkiffImage
import SkiffKernel

/// `skiff`: the container engine's command line, with Docker's commands and exit codes.
public struct SkiffCommand: ParsableCommand {
    /// The image commands of this file's neighbour ImageCommands.swift. Other groups (registry:
    /// pull/push/login/logout; containers: run/ps/...) are lists like this one, joined below.
    static let imageCommands: [any ParsableCommand.Type] = [
        ImagesCommand.self, TagCommand.self, RemoveImageCommand.self, HistoryCommand.self, InspectCommand.self,
        SaveCommand.self, LoadCommand.self, ImportCommand.self, ExportCommand.self,
    ]
    static let registryCommands: [any ParsableCommand.Type] = [Pull.self, Push.self, Login.self, Logout.self]
    static let containerCommands: [any ParsableCommand.Type] = [
        ContainerRunCommand.self, ListContainersCommand.self, LogsCommand.self, StopCommand.self, RemoveContainerCommand.self,
        ContainerExecCommand.self, ContainerStartCommand.self, ContainerKillCommand.self, ContainerWaitCommand.self,
        ContainerPauseCommand.self, ContainerUnpauseCommand.self, ContainerRenameCommand.self, MonitorCommand.self,
    ]

    public static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "A container engine with Docker's commands: images, and (soon) containers.",
        subcommands: containerCommands + imageCommands + registryCommands)

    @OptionGroup var global: SkiffOptions

    public init() {}

    /// Runs the command line, exiting as `docker` does: 125 when the command line itself is wrong
    /// (ArgumentParser would say 64), so scripts can tell Skiff's failures from a container's.
    public static func runAndExit() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            Glibc.exit(0)
        } catch {
            if exitCode(for: error) == .validationFailure {
                printToStandardError(fullMessage(for: error))
                Glibc.exit(125)
            }
            exit(withError: error)
        }
    }
}

/// Options every `skiff` command takes, before or after the command's name.
public struct SkiffOptions: ParsableArguments {
    @Option(help: "The store's directory (default: $SKIFF_ROOT, else /var/lib/skiff).") var root: String?

    public init() {}

    var rootPath: String { root ?? ImageStore.defaultRoot }
    var store: ImageStore { ImageStore(root: rootPath) }
    var containers: ContainerStore { ContainerStore(root: rootPath) }

    /// Runs `body`, turning a failure into Docker's convention: `skiff: MESSAGE` on stderr and
    /// exit status 125 (the status a SkiffError names).
    func perform(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as ExitCode {
            throw error
        } catch let error as SkiffError {
            printToStandardError("skiff: \(error)")
            throw ExitCode(error.exitStatus)
        } catch {
            printToStandardError("skiff: \(error)")
            throw ExitCode(125)
        }
    }
}
