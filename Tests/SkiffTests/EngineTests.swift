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
