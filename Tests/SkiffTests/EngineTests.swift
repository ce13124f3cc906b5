import Foundation
import Testing

@testable import SkiffEngine
@testable import SkiffImage
@testable import SkiffKernel
@testable import SkiffRuntime

@Suite("skiff run: an image's config and the run's flags become the OCI spec")
struct RunPlanTests {
    static let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:33:33:web:/var/www:/bin/sh\n"
    static let group = "root:x:0:\nweb:x:33:\nadmins:x:50:web\n"

    func image(_ edit: (inout ImageConfig.RunConfig) -> Void) -> ImageConfig {
        var config = ImageConfig.RunConfig()
        edit(&config)
        return ImageConfig(config: config, diffIDs: [])
    }

    func spec(_ image: ImageConfig, _ options: RunOptions = RunOptions(), host: [String: String] = [:]) throws -> Spec {
        try RunPlan.spec(
            image: image, options: options, rootfs: "/containers/c/rootfs", id: "0123456789abcdef", passwd: Self.passwd, group: Self.group,
            hostEnvironment: host)
    }

    @Test("Entrypoint + Cmd, the image's Env with PATH and HOSTNAME, WorkingDir, User resolved in the container's passwd")
    func fromImage() throws {
        let config = image {
            $0.Entrypoint = ["/bin/app"]
            $0.Cmd = ["--serve"]
            $0.Env = ["MODE=prod"]
            $0.WorkingDir = "/srv"
            $0.User = "web"
        }
        let spec = try spec(config)
        #expect(spec.process?.args == ["/bin/app", "--serve"])
        #expect(spec.process?.env == [ImageProcess.defaultPath, "MODE=prod", "HOSTNAME=0123456789ab"])
        #expect(spec.process?.cwd == "/srv")
        #expect(spec.process?.user.uid == 33 && spec.process?.user.gid == 33 && spec.process?.user.additionalGids == [50])
        #expect(spec.process?.capabilities?.effective == [], "a non-root user keeps no capabilities")
        #expect(spec.hostname == "0123456789ab")
        #expect(spec.root?.path == "/containers/c/rootfs")
    }

    @Test("the run's command replaces Cmd; --entrypoint replaces both; -e overrides, -e NAME takes the host's value")
    func overrides() throws {
        let config = image {
            $0.Entrypoint = ["/bin/app"]
            $0.Cmd = ["--serve"]
            $0.Env = ["MODE=prod", "PATH=/opt/bin"]
        }
        var options = RunOptions(command: ["--check"])
        options.environment = ["MODE=dev", "TOKEN", "MISSING"]
        let spec = try spec(config, options, host: ["TOKEN": "t0k"])
        #expect(spec.process?.args == ["/bin/app", "--check"])
        #expect(spec.process?.env == ["PATH=/opt/bin", "MODE=dev", "TOKEN=t0k", "HOSTNAME=0123456789ab"])
        options = RunOptions()
        options.entrypoint = "/bin/sh"
        #expect(try self.spec(config, options).process?.args == ["/bin/sh"], "a new entrypoint drops the image's Cmd")
        options.entrypoint = ""
        options.command = ["echo", "hi"]
        #expect(try self.spec(config, options).process?.args == ["echo", "hi"])
    }

    @Test("no command at all, a relative working directory, an unknown user: each refused with what to do")
    func refused() throws {
        #expect(throws: SkiffError.self) { try spec(image { _ in }) }
        var options = RunOptions(command: ["true"])
        options.workingDirectory = "srv"
        #expect(throws: SkiffError.self) { try spec(image { _ in }, options) }
        options = RunOptions(command: ["true"])
        options.user = "nobody-here"
        #expect(throws: SkiffError.self) { try spec(image { _ in }, options) }
    }
}

extension RealTests {
    /// Issue #8 end to end: an image made here travels through a real registry into a fresh
    /// store and runs there, with `skiff run --rm` and with lesson 12.
    @Suite(
        "images: push, pull into a fresh store, run",
        .enabled(if: FileManager.default.isExecutableFile(atPath: LocalRegistry.program), "needs Debian's docker-registry (make deps)"))
    struct ImageRunTests {
        @Test("an image pushed to a registry is pulled into a fresh store, runs with skiff run --rm and lesson 12, and leaves nothing")
        func pushPullRun() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            func skiff(_ root: String, _ arguments: [String]) throws -> Outcome {
                try Started(Host.executable("skiff"), ["--root", scratch.path + "/" + root] + arguments).finish()
            }
            let name = "\(registry.name)/lab/busybox:1"
            let tarball = try ImageTests.sampleTar(in: scratch.path)
            #expect(try skiff("source", ["import", tarball, "busybox:sample"]).status == 0)
            #expect(try skiff("source", ["tag", "busybox:sample", name]).status == 0)
            let pushed = try skiff("source", ["push", name])
            #expect(pushed.status == 0, "\(pushed.stderr)")

            let pulled = try skiff("fresh", ["pull", name])
            #expect(pulled.status == 0, "\(pulled.stderr)")
            #expect(pulled.lines.last == "Status: Downloaded image for \(name)")
            #expect(try skiff("fresh", ["images", "--format-free-check"]).status == 125, "an unknown flag is Docker's 125")
            #expect(try skiff("fresh", ["images"]).stdout.contains("\(registry.name)/lab/busybox   1"))

            let run = try skiff(
                "fresh",
                [
                    "run", "--rm", "-e", "GREETING=hi", "-w", "/tmp", name, "sh", "-c",
                    "echo $GREETING; pwd; /probe exists /.skiff-sample; exit 3",
                ])
            #expect(run.status == 3, "\(run.stderr)")
            #expect(run.lines == ["hi", "/tmp", "yes"])
            #expect(
                try Files.names(in: scratch.path + "/fresh/containers").filter { !$0.hasPrefix(".") }.isEmpty, "--rm leaves no container")
            #expect(!(try ProcFS().mountInfo()).contains(scratch.path), "and no mount")
            let missing = try skiff("fresh", ["run", "--rm", name, "/no/such/program"])
            #expect(missing.status == 127, "\(missing.stderr)")

            // Lesson 12 pulls into a third store and runs the image with lesson 11's isolation.
            let lesson12 = try lesson(
                "lesson12-images",
                [
                    "--store", scratch.path + "/lesson", "--image", name, "--bridge", "skimg0", "--subnet", "10.221.0.0/24", "--", "sh",
                    "-c",
                    "/probe exists /.skiff-sample; /probe uid; cat /proc/self/uid_map",
                ])
            #expect(lesson12.status == 0, "\(lesson12.stderr)")
            #expect(lesson12.stderr.hasPrefix("lesson12-images: pulled \(name) as sha256:"), "\(lesson12.stderr)")
            #expect(lesson12.lines == ["yes", "uid=0 euid=0 gid=0 egid=0", "         0     100000      65536"])
        }
    }
}

extension RealTests {
    /// The engine's container lifecycle on the busybox sample imported as an image.
    @Suite("skiff: containers run, detached or not, and are listed, logged, stopped and removed")
    struct ContainerLifecycleTests {
        final class Engine {
            let scratch: TemporaryDirectory
            init() throws {
                scratch = try TemporaryDirectory()
                let tarball = try ImageTests.sampleTar(in: scratch.path)
                let imported = try run(["import", tarball, "sample:1"])
                guard imported.status == 0 else { throw TestSetupError("import: \(imported.stderr)") }
            }
            func run(_ arguments: [String]) throws -> Outcome {
                try Started(Host.executable("skiff"), ["--root", scratch.path + "/root"] + arguments).finish()
            }
            var containers: String { scratch.path + "/root/containers" }
        }

        @Test("run -d returns the id at once; ps, logs and exec see it; stop sends TERM; rm removes it and its mounts")
        func detached() throws {
            let engine = try Engine()
            let started = try engine.run([
                "run", "-d", "--name", "web", "sample:1", "sh", "-c",
                "echo started; trap 'echo got TERM; exit 0' TERM; while true; do sleep 1; done",
            ])
            #expect(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(id.count == 64)
            #expect(try engine.run(["ps", "-q"]).lines == [String(id.prefix(12))])
            let again = try engine.run(["run", "-d", "--name", "web", "sample:1", "true"])
            #expect(again.status == 125 && again.stderr.contains("the container name \"/web\" is already in use"), "\(again.stderr)")
            let exec = try engine.run(["exec", "-e", "WHO=exec", "web", "sh", "-c", "echo $WHO; cat /proc/1/comm; hostname; exit 4"])
            #expect(exec.status == 4)
            #expect(exec.lines == ["exec", "sh", String(id.prefix(12))], "another process in the container's PID and UTS namespaces")
            for _ in 0..<100 where try !engine.run(["logs", "web"]).stdout.contains("started") { usleep(20_000) }
            #expect(try engine.run(["pause", "web"]).status == 0)
            #expect(try engine.run(["ps"]).stdout.contains("Up (Paused)"))
            #expect(try engine.run(["unpause", "web"]).status == 0)
            #expect(try engine.run(["rename", "web", "site"]).status == 0)
            #expect(try engine.run(["ps", "--format-check-unknown"]).status == 125)
            #expect(try engine.run(["rename", "site", "web"]).status == 0, "and back")
            #expect(try engine.run(["stop", "-t", "5", "web"]).status == 0)
            #expect(try engine.run(["logs", "web"]).lines == ["started", "got TERM"], "the log outlives the container")
            #expect(try engine.run(["ps", "-a"]).stdout.contains("Exited (0)"))
            #expect(try engine.run(["rm", "web"]).status == 0)
            #expect(try engine.run(["ps", "-a", "-q"]).stdout.isEmpty)
            #expect(try Files.names(in: engine.containers).filter { !$0.hasPrefix(".") }.isEmpty)
            #expect(!(try ProcFS().mountInfo()).contains(engine.scratch.path), "no mount is left")
        }

        @Test("a foreground run returns the exit status and stays listed; --rm leaves nothing; rm -f kills a running one")
        func foreground() throws {
            let engine = try Engine()
            let kept = try engine.run(["run", "--name", "once", "sample:1", "sh", "-c", "echo out; exit 3"])
            #expect(kept.status == 3 && kept.lines == ["out"], "\(kept.stderr)")
            #expect(try engine.run(["ps", "-a"]).stdout.contains("Exited (3)"))
            let removed = try engine.run(["run", "--rm", "sample:1", "true"])
            #expect(removed.status == 0)
            #expect(try engine.run(["ps", "-a", "-q"]).lines.count == 1, "--rm left no record")
            #expect(try engine.run(["run", "-d", "--name", "sleeper", "sample:1", "sleep", "60"]).status == 0)
            let busy = try engine.run(["rm", "sleeper"])
            #expect(busy.status == 125 && busy.stderr.contains("is running"))
            // KILL, the default: TERM would do nothing to a PID 1 (sleep) without a handler.
            #expect(try engine.run(["kill", "sleeper"]).status == 0)
            #expect(try engine.run(["wait", "sleeper"]).lines == ["137"], "killed by SIGKILL: 128 + 9")
            #expect(try engine.run(["start", "once"]).status == 0)
            #expect(try engine.run(["wait", "once"]).lines == ["3"])
            #expect(try engine.run(["logs", "once"]).lines == ["out"], "a started container's output goes to its log")
            let notRunning = try engine.run(["kill", "once"])
            #expect(notRunning.status == 125 && notRunning.stderr.contains("is not running"))
            #expect(try engine.run(["rm", "-f", "sleeper", "once"]).status == 0)
            #expect(try engine.run(["ps", "-a", "-q"]).stdout.isEmpty)
            #expect(!(try ProcFS().mountInfo()).contains(engine.scratch.path))
        }

        @Test("kill -9 of a container's monitor: ps shows it exited, and rm cleans up")
        func monitorKilled() throws {
            let engine = try Engine()
            #expect(try engine.run(["run", "-d", "--name", "orphan", "sample:1", "sleep", "60"]).status == 0)
            let record = try JSONDecoder().decode(
                ContainerRecord.self,
                from: Data(
                    contentsOf: URL(
                        fileURLWithPath: engine.containers + "/" + (try engine.run(["ps", "-q", "--no-trunc"]).lines.first ?? "")
                            + "/container.json"
                    )))
            let monitor = try #require(record.monitorPID)
            let pid = try #require(record.pid)
            kill(monitor, SIGKILL)
            for _ in 0..<200 where ProcFS().isRunning(pid) || ProcFS().isRunning(monitor) { usleep(10_000) }
            #expect(!ProcFS().isRunning(pid), "the container dies with its monitor")
            #expect(try engine.run(["ps", "-a"]).stdout.contains("Exited (137)"))
            #expect(try engine.run(["rm", "orphan"]).status == 0)
            #expect(try engine.run(["ps", "-a", "-q"]).stdout.isEmpty)
        }
    }
}
