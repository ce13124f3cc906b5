import Foundation
import SkiffCgroups
import Testing

@testable import SkiffKernel
@testable import SkiffRuntime
@testable import SkiffSecurity

@Suite("skiff-runtime: the OCI spec read into a plan")
struct RuntimePlanTests {
    func plan(_ edit: (inout Spec) -> Void = { _ in }) throws -> ContainerPlan {
        var spec = DefaultSpec.make()
        edit(&spec)
        return try ContainerPlan(spec: spec, id: "c1", bundle: "/bundles/c1")
    }

    @Test("the default spec: new namespaces, rslave root, mounts with their flags, Docker's capabilities and devices")
    func defaultSpec() throws {
        let plan = try plan()
        #expect(plan.rootfs == "/bundles/c1/rootfs")
        #expect(plan.readonlyRootfs)
        #expect(plan.newNamespaces == [.pid, .network, .ipc, .uts, .mount])
        #expect(plan.rootPropagation == [.slave, .recursive])
        let proc = try #require(plan.mounts.first)
        #expect(
            proc
                == ContainerPlan.Mount(
                    destination: "/proc", source: "proc", type: "proc", flags: [.noSuid, .noExec, .noDev], propagation: [], data: nil))
        let dev = try #require(plan.mounts.first { $0.destination == "/dev" })
        #expect(dev.flags == [.noSuid, .strictAtime] && dev.data == "mode=755,size=65536k")
        #expect(plan.process.effective == .containerDefault && plan.process.bounding == .containerDefault)
        #expect(plan.process.rlimits.first?.name == "nofile")
        #expect(plan.process.noNewPrivileges)
        #expect(plan.limits.deviceRules == ResourceLimits.containerDevices, "deny all, then the standard devices")
        #expect(plan.seccomp != nil)
    }

    @Test("joined namespaces: the user namespace first, and a new PID namespace beside a joined user one is refused")
    func joinedNamespaces() throws {
        let joined = try plan { spec in
            spec.linux?.namespaces = [
                .init(type: "network", path: "/proc/7/ns/net"), .init(type: "pid", path: "/proc/7/ns/pid"),
                .init(type: "user", path: "/proc/7/ns/user"), .init(type: "mount"), .init(type: "uts"),
            ]
        }
        #expect(joined.joinedNamespaces.map(\.type) == [.user, .network, .pid])
        #expect(joined.joinsUserNamespace && joined.joinedPIDNamespace == "/proc/7/ns/pid")
        #expect(joined.newNamespaces == [.mount, .uts])
    }

    @Test("blockIO weight becomes the cgroup weight, 0 is unset; outside 10–1000 it is refused naming the field")
    func blockIOWeight() throws {
        #expect(try plan { $0.linux?.resources?.blockIO = .init(weight: 300) }.limits.blkioWeight == 300)
        #expect(try plan { $0.linux?.resources?.blockIO = .init(weight: 0) }.limits.blkioWeight == nil, "0 is unset, as Docker sends it")
        do {
            _ = try plan { $0.linux?.resources?.blockIO = .init(weight: 5) }
            Issue.record("a weight of 5 was accepted")
        } catch {
            #expect((error as? SkiffError)?.message == "config.json: linux.resources.blockIO.weight 5 is outside 10–1000")
        }
    }

    @Test("mount options: flags set and cleared, bind and rbind, propagation, the rest as data, relative bind sources")
    func mountOptions() throws {
        let mount = try ContainerPlan.plan(
            Spec.Mount(
                destination: "/data", type: "bind", source: "data", options: ["rbind", "ro", "rw", "nosuid", "rprivate", "x-custom=1"]),
            index: 0, bundle: "/b")
        #expect(mount.source == "/b/data")
        #expect(mount.flags == [.bind, .recursive, .noSuid])
        #expect(mount.propagation == [.private, .recursive])
        #expect(mount.data == "x-custom=1")
        #expect(mount.type == nil)
    }

    @Test("resources become limits: memory, CPU quota as CPUs, shares, pids")
    func resources() throws {
        let plan = try plan { spec in
            spec.linux?.resources = Spec.Linux.Resources(
                memory: .init(limit: 64 << 20), cpu: .init(shares: 512, quota: 50_000, period: 100_000), pids: .init(limit: 20))
            spec.linux?.cgroupsPath = "/skiff-test/c1"
        }
        #expect(plan.limits.memoryBytes == 64 << 20)
        #expect(plan.limits.cpus == 0.5)
        #expect(plan.limits.cpuShares == 512)
        #expect(plan.limits.pids == 20)
        #expect(plan.cgroupPath == "/skiff-test/c1")
    }

    @Test("a bad spec is refused with the field named")
    func badSpecs() {
        let cases: [(String, (inout Spec) -> Void)] = [
            ("process.args is empty", { $0.process?.args = [] }),
            ("process.cwd \"tmp\" must be absolute", { $0.process?.cwd = "tmp" }),
            ("linux.namespaces[0].type \"time-travel\"", { $0.linux?.namespaces = [.init(type: "time-travel")] }),
            ("needs linux.uidMappings", { $0.linux?.namespaces?.append(.init(type: "user")) }),
            (
                "a new PID namespace with a joined user namespace",
                { $0.linux?.namespaces = [.init(type: "user", path: "/proc/1/ns/user"), .init(type: "pid"), .init(type: "uts")] }
            ),
            ("mounts[0].destination \"proc\" must be absolute", { $0.mounts?[0].destination = "proc" }),
            ("process.capabilities.effective: unknown capability", { $0.process?.capabilities?.effective = ["CAP_FLY"] }),
            ("root is missing", { $0.root = nil }),
            ("ociVersion \"0.9\"", { $0.ociVersion = "0.9" }),
        ]
        for (message, edit) in cases {
            #expect {
                _ = try plan(edit)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    @Test("container ids: letters, digits, _ - . and no leading dot")
    func ids() {
        #expect(ContainerPlan.isValidID("web-1.a_b"))
        #expect(!ContainerPlan.isValidID(".hidden") && !ContainerPlan.isValidID("a/b") && !ContainerPlan.isValidID(""))
    }
}
