import Foundation
import SkiffCgroups
import SkiffKernel
import SkiffNetwork
import Testing

@testable import SkiffLayers
@testable import SkiffRuntime

/// Real tests, as root: run the lesson executables on the busybox sample and ask the probe.
/// Serialized because they create namespaces, mounts and IPC objects on one host.
@Suite("real, as root", .serialized, .enabled(if: Host.canRunLessons, "the lessons need root"))
struct RealTests {
    /// Every lesson leaves the host's mount table as it found it.
    static func expectHostMountsUnchanged(_ body: () throws -> Void) throws {
        let before = try Host.mountTable()
        try body()
        #expect(try Host.mountTable() == before, "no mount is left behind on the host")
    }

    /// Inside, exactly the namespaces in `new` differ from the host's; the rest are shared.
    static func expectNamespaces(_ executable: String, new: Set<String>) throws {
        let probe = ["lesson01-uts", "lesson02-pid"].contains(executable) ? Host.sampleRootfs + "/probe" : "/probe"
        let inside = namespaces(from: try lesson(executable, ["--", probe, "ns"]))
        let host = Host.namespaceInodes()
        for (name, inode) in host {
            if new.contains(name) {
                #expect(inside[name] != nil && inside[name] != inode, "\(name) namespace is new")
            } else {
                #expect(inside[name] == inode, "\(name) namespace is the host's")
            }
        }
    }
}

extension RealTests {
    @Suite("lesson 01: UTS namespace")
    struct Lesson01UTS {
        @Test("every command in lessons/01-uts/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "01-uts")
        }

        @Test("the hostname inside is the one given and the host's is unchanged")
        func hostname() throws {
            let hostBefore = ProcessInfo.processInfo.hostName
            let outcome = try lesson("lesson01-uts", ["--hostname", "skiff-demo", "--", "hostname"])
            #expect(outcome.status == 0)
            #expect(outcome.stdout == "skiff-demo\n")
            #expect(gethostnameString() == hostBefore)
            #expect(outcome.stderr.isEmpty, "silent without --explain")
        }

        @Test("only the UTS namespace is new")
        func namespaces() throws {
            try RealTests.expectNamespaces("lesson01-uts", new: ["uts"])
        }

        @Test("the command's exit status and fatal signal pass through")
        func exitStatus() throws {
            #expect(try lesson("lesson01-uts", ["--", "sh", "-c", "exit 7"]).status == 7)
            #expect(try lesson("lesson01-uts", ["--", Host.sampleRootfs + "/probe", "kill-self", "15"]).status == 143)
        }

        @Test("a bad hostname and a missing command are clear errors")
        func badInput() throws {
            let badName = try lesson("lesson01-uts", ["--hostname", "bad_name", "--", "true"])
            #expect(badName.status == 125)
            #expect(badName.stderr.contains("lesson01-uts: invalid hostname \"bad_name\""))
            let missing = try lesson("lesson01-uts", ["--", "no-such-command-skiff"])
            #expect(missing.status == 127)
            #expect(missing.stderr.contains("no-such-command-skiff: command not found"))
        }

        @Test("--explain narrates each call with its arguments and why; --step waits for Enter")
        func narration() throws {
            let explained = try lesson("lesson01-uts", ["--hostname", "demo", "--explain", "--", "hostname"])
            #expect(explained.stdout == "demo\n")
            #expect(explained.stderr.contains("clone(CLONE_NEWUTS|SIGCHLD)"))
            #expect(explained.stderr.contains("sethostname(\"demo\", 4)"))
            #expect(explained.stderr.contains("name the container; the host keeps its own name"))
            // In a session of its own, so --step reads the piped Enters, not a developer's terminal.
            let stepped = try Started(
                Host.executable("lesson01-uts"), ["--hostname", "demo", "--step", "--", "hostname"],
                input: "\n\n\n\n\n", newSession: true
            ).finish()
            #expect(stepped.status == 0)
            #expect(stepped.stdout == "demo\n")
            #expect(stepped.stderr.components(separatedBy: "[press Enter to run it]").count - 1 == 4)
        }
    }

    @Suite("lesson 02: PID namespace")
    struct Lesson02PID {
        @Test("every command in lessons/02-pid/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "02-pid")
        }

        @Test("the command is PID 1 and /proc shows only its processes")
        func pidOne() throws {
            #expect(try lesson("lesson02-pid", ["--", Host.sampleRootfs + "/probe", "pid"]).stdout == "1\n")
            let ps = try lesson("lesson02-pid", ["--", Host.sampleRootfs + "/probe", "ps"])
            #expect(ps.lines == ["1 probe"])
        }

        @Test("the PID and mount namespaces are new, and the host's /proc is untouched")
        func namespaces() throws {
            try RealTests.expectHostMountsUnchanged {
                try RealTests.expectNamespaces("lesson02-pid", new: ["uts", "pid", "mnt"])
            }
        }

        @Test("with --init, the command is PID 2 and its orphans are reaped")
        func initReaps() throws {
            let probe = Host.sampleRootfs + "/probe"
            let outcome = try lesson(
                "lesson02-pid",
                ["--init", "--", "sh", "-c", "\(probe) pid; \(probe) orphan >/dev/null; \(probe) sleep 0.5; \(probe) zombies"])
            #expect(outcome.lines == ["3", "0"], "sh is PID 2, the probe it starts PID 3, and no zombie is left")
        }

        @Test("without --init a signal PID 1 has no handler for is ignored")
        func pidOneIgnoresSignals() throws {
            let outcome = try lesson("lesson02-pid", ["--", Host.sampleRootfs + "/probe", "kill-self", "15"])
            #expect(outcome.stderr.contains("still alive after raise"))
        }

        @Test("with --init, SIGTERM sent to the lesson reaches the command")
        func initForwardsSignals() throws {
            let started = try Started(
                Host.executable("lesson02-pid"), ["--init", "--", "sh", "-c", "echo ready; exec \(Host.sampleRootfs)/probe sleep 30"])
            try started.waitForOutput("ready")
            kill(started.pid, SIGTERM)
            #expect(started.finish().status == 143)
        }
    }

    @Suite("lesson 03: mount namespace and pivot_root")
    struct Lesson03Mount {
        @Test("every command in lessons/03-mount/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "03-mount")
        }

        @Test("a host file is not visible after pivot_root, and the rootfs's files are")
        func hostInvisible() throws {
            let marker = "/tmp/skiff-host-marker-\(UUID().uuidString)"
            _ = FileManager.default.createFile(atPath: marker, contents: Data("host".utf8))
            defer { try? FileManager.default.removeItem(atPath: marker) }
            let outside = try lesson("lesson03-mount", ["--", "/probe", "exists", marker])
            #expect(outside.status == 1 && outside.stdout == "no\n")
            let inside = try lesson("lesson03-mount", ["--", "/probe", "exists", "/.skiff-sample"])
            #expect(inside.status == 0)
        }

        @Test("/proc, a read-only /sys and a minimal /dev are mounted; nothing is left on the host")
        func mounts() throws {
            try RealTests.expectHostMountsUnchanged {
                let mounts = try lesson("lesson03-mount", ["--", "/probe", "mounts"]).lines
                #expect(mounts.contains { $0.hasPrefix("/proc proc ") })
                #expect(mounts.contains { $0.hasPrefix("/sys sysfs ro,") })
                #expect(mounts.contains { $0.hasPrefix("/dev tmpfs ") })
                #expect(mounts.contains { $0.hasPrefix("/dev/pts devpts ") })
                #expect(mounts.contains { $0.hasPrefix("/dev/shm tmpfs ") })
                #expect(!mounts.contains { $0.hasPrefix("/work") || $0.hasPrefix("/home") }, "no host mount remains")
                let dev = try lesson("lesson03-mount", ["--", "/probe", "ls", "/dev"]).lines
                #expect(
                    dev == [
                        "core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
                    ])
                let write = try lesson("lesson03-mount", ["--", "/probe", "write", "/sys/kernel/skiff", "x"])
                #expect(write.status == 1 && write.stderr.contains("Read-only file system"))
            }
        }

        @Test("the devices work and /proc shows only the container")
        func devicesWork() throws {
            let outcome = try lesson(
                "lesson03-mount", ["--", "sh", "-c", "echo gone > /dev/null && head -c 4 /dev/zero | wc -c && /probe ps; true"])
            // `; true` keeps sh from exec'ing the probe, so both show up.
            #expect(outcome.lines.first == "4")
            let processes = outcome.lines.dropFirst().map { $0.split(separator: " ").map(String.init) }
            #expect(processes.map { $0.last } == ["sh", "probe"], "only the container's processes")
            #expect(processes.first?.first == "1")
        }

        @Test("a missing rootfs and a rootfs without the command are clear errors")
        func badRootfs() throws {
            let missing = try lesson("lesson03-mount", ["--rootfs", "/nonexistent-skiff", "--", "true"])
            #expect(missing.status == 125)
            #expect(missing.stderr.contains("rootfs /nonexistent-skiff does not exist"))
            let noCommand = try lesson("lesson03-mount", ["--", "no-such-command-skiff"])
            #expect(noCommand.status == 127)
        }

        @Test("--explain shows pivot_root and the detach of the old root")
        func narration() throws {
            let outcome = try lesson("lesson03-mount", ["--explain", "--", "true"])
            #expect(outcome.status == 0)
            #expect(outcome.stderr.contains("pivot_root(\".\", \".\")"))
            #expect(outcome.stderr.contains("umount2(\".\", MNT_DETACH)"))
        }
    }

    @Suite("lesson 04: IPC namespace")
    struct Lesson04IPC {
        @Test("every command in lessons/04-ipc/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "04-ipc")
        }

        @Test("a host SysV segment is invisible inside, and the container's does not reach the host")
        func sharedMemory() throws {
            let id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
            try #require(id >= 0)
            defer { shmctl(id, IPC_RMID, nil) }
            let hostSegments = try String(contentsOfFile: "/proc/sysvipc/shm", encoding: .utf8)
            #expect(hostSegments.contains(" \(id) "))
            let inside = try lesson(
                "lesson04-ipc", ["--", "sh", "-c", "/probe shm; /probe shm-create 4096 >/dev/null; /probe shm | wc -l"])
            #expect(inside.lines == ["1"], "nothing of the host's; then exactly the container's own segment")
            #expect(try String(contentsOfFile: "/proc/sysvipc/shm", encoding: .utf8) == hostSegments)
        }

        @Test("only the IPC namespace is new beyond lesson 03, and /dev/mqueue is its own")
        func namespaces() throws {
            try RealTests.expectNamespaces("lesson04-ipc", new: ["uts", "pid", "mnt", "ipc"])
            let mounts = try lesson("lesson04-ipc", ["--", "/probe", "mounts"]).lines
            #expect(mounts.contains { $0.hasPrefix("/dev/mqueue mqueue ") })
        }
    }

    @Suite("lesson 05: user namespace")
    struct Lesson05User {
        @Test("every command in lessons/05-user/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "05-user")
        }

        @Test("uid_map reads 0 100000 65536 and the command is root inside")
        func rootInside() throws {
            let outcome = try lesson("lesson05-user", ["--", "sh", "-c", "/probe idmap; /probe uid"])
            #expect(outcome.lines == ["uid 0 100000 65536", "gid 0 100000 65536", "uid=0 euid=0 gid=0 egid=0"])
            let custom = try lesson("lesson05-user", ["--map-root-to", "200000", "--", "/probe", "idmap"])
            #expect(custom.lines == ["uid 0 200000 65536", "gid 0 200000 65536"])
        }

        @Test("outside, the container's root is the unprivileged uid 100000, and dies with the lesson")
        func unprivilegedOutside() throws {
            let started = try Started(Host.executable("lesson05-user"), ["--", "sh", "-c", "echo ready; exec /probe sleep 30"])
            try started.waitForOutput("ready")
            let children = try String(contentsOfFile: "/proc/\(started.pid)/task/\(started.pid)/children", encoding: .utf8)
            let containerPID = Int32(children.split(separator: " ").first ?? "") ?? 0
            try #require(containerPID > 0)
            let status = try String(contentsOfFile: "/proc/\(containerPID)/status", encoding: .utf8)
            #expect(status.contains("Uid:\t100000\t100000\t100000\t100000"))
            kill(started.pid, SIGKILL)
            _ = started.finish()
            var gone = false
            for _ in 0..<500 where !gone {
                gone = kill(containerPID, 0) != 0
                if !gone { usleep(10_000) }
            }
            #expect(gone, "the container died with the lesson")
        }

        @Test("the user namespace is new, and the full capability set counts only inside")
        func namespaces() throws {
            try RealTests.expectNamespaces("lesson05-user", new: ["user", "uts", "pid", "mnt", "ipc"])
            let status = try lesson("lesson05-user", ["--", "/probe", "status"]).lines
            #expect(status.contains("CapEff: 000001ffffffffff"))
            let mknod = try lesson("lesson05-user", ["--", "mknod", "/tmp/null2", "c", "1", "3"])
            #expect(mknod.status != 0, "mknod is refused: root inside is not root outside")
        }

        @Test("--map-root-to 0 is refused before anything is created")
        func rootToRootRefused() throws {
            let outcome = try lesson("lesson05-user", ["--map-root-to", "0", "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("--map-root-to 0"))
        }
    }

    @Suite("lesson 06: network namespace")
    struct Lesson06Net {
        @Test("every command in lessons/06-net/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "06-net")
        }

        @Test("only lo exists, and it is up")
        func onlyLoopback() throws {
            let outcome = try lesson("lesson06-net", ["--", "/probe", "links"])
            #expect(outcome.lines == ["lo up"])
            let sys = try lesson("lesson06-net", ["--", "/probe", "ls", "/sys/class/net"])
            #expect(sys.lines == ["lo"], "its own sysfs shows only its own links")
        }

        @Test("127.0.0.1 answers inside")
        func loopbackWorks() throws {
            let outcome = try lesson("lesson06-net", ["--", "ping", "-c", "1", "-W", "5", "127.0.0.1"])
            #expect(outcome.status == 0)
            #expect(outcome.stdout.contains("1 packets received"))
        }

        @Test("every namespace but cgroup is new")
        func namespaces() throws {
            try RealTests.expectHostMountsUnchanged {
                try RealTests.expectNamespaces("lesson06-net", new: ["user", "uts", "pid", "mnt", "ipc", "net"])
            }
        }
    }
}

func gethostnameString() -> String {
    var buffer = [UInt8](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
}

extension RealTests {
    @Suite("lesson 07: cgroups")
    struct Lesson07Cgroups {
        /// The lesson's cgroup directories, named after its pid, in every v1 hierarchy or in v2.
        static func cgroupDirectories(of lessonPID: Int32) throws -> [String] {
            let cgroup = try Cgroups.open(name: "lesson07-\(lessonPID)", limits: ResourceLimits(), layout: .host(), kernel: Kernel())
            #expect(cgroup.paths.count >= 1)
            return cgroup.paths
        }

        /// Runs lesson 07 and checks that it left no cgroup behind.
        static func run(_ arguments: [String]) throws -> Outcome {
            let started = try Started(Host.executable("lesson07-cgroups"), arguments)
            let outcome = started.finish()
            for directory in try cgroupDirectories(of: started.pid) {
                #expect(!FileManager.default.fileExists(atPath: directory), "\(directory) is removed")
            }
            return outcome
        }

        @Test("every command in lessons/07-cgroups/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "07-cgroups")
        }

        @Test("a memory hog above its limit is OOM-killed, and the lesson says so")
        func memoryLimit() throws {
            let outcome = try Self.run(["--memory", "32m", "--stats", "--", "/probe", "memhog", "200"])
            #expect(outcome.status == 137)
            #expect(outcome.stderr.contains("the command was killed for exceeding its memory limit of 32 MiB"))
            #expect(outcome.stderr.contains("OOM kills 1"))
            let within = try Self.run(["--memory", "32m", "--", "/probe", "memhog", "8"])
            #expect(within.status == 0 && within.stdout == "allocated 8 MiB\n", "below the limit it runs")
        }

        @Test("a fork bomb stops at --pids")
        func pidsLimit() throws {
            let outcome = try Self.run(["--pids", "20", "--", "/probe", "forkbomb", "1000"])
            #expect(outcome.status == 0)
            let forked = outcome.lines.first.flatMap { Int($0.split(separator: " ").last ?? "") } ?? -1
            #expect((1..<20).contains(forked), "forked \(forked) of at most 19 more")
            #expect(outcome.stdout.contains("fork failed: Resource temporarily unavailable"))
        }

        @Test("cpuburn 2 under --cpus 0.5 gets at most ~60% of a core, and throttling shows")
        func cpuLimit() throws {
            let outcome = try Self.run(["--cpus", "0.5", "--stats", "--", "/probe", "cpuburn", "2"])
            #expect(outcome.status == 0)
            let cpuLine = outcome.stderr.split(separator: "\n").first { $0.contains("cpu: usage") } ?? ""
            // "lesson07-cgroups: cpu: usage 1.004 s, throttled 19 periods for 0.950 s"
            let words = cpuLine.split(separator: " ")
            let usage = words.firstIndex(of: "usage").flatMap { Double(words[$0 + 1]) } ?? 99
            let throttled = words.firstIndex(of: "throttled").flatMap { Int(words[$0 + 1]) } ?? 0
            #expect(usage <= 1.2, "CPU time \(usage) s of 2 s burned")
            #expect(usage >= 0.5, "it did run")
            #expect(throttled > 0, "the quota throttled it")
        }

        @Test("the cgroup is removed when the command is killed from outside")
        func killedCommand() throws {
            let started = try Started(
                Host.executable("lesson07-cgroups"), ["--memory", "64m", "--", "sh", "-c", "echo ready; exec /probe sleep 30"])
            try started.waitForOutput("ready")
            let children = try String(contentsOfFile: "/proc/\(started.pid)/task/\(started.pid)/children", encoding: .utf8)
            let containerPID = try #require(Int32(children.split(separator: " ").first ?? ""))
            let directories = try Self.cgroupDirectories(of: started.pid)
            #expect(directories.allSatisfy { FileManager.default.fileExists(atPath: $0) }, "the cgroup exists while it runs")
            kill(containerPID, SIGKILL)
            #expect(started.finish().status == 137)
            for directory in directories {
                #expect(!FileManager.default.fileExists(atPath: directory), "\(directory) is removed")
            }
        }

        @Test("a cgroup left by a run that was SIGKILLed is removed by the next run")
        func staleCgroupSwept() throws {
            let finished = Process()
            finished.executableURL = URL(fileURLWithPath: "/bin/true")
            try finished.run()
            finished.waitUntilExit()
            // The pid of a process that has exited: its cgroup is stale.
            let stale = try Self.cgroupDirectories(of: finished.processIdentifier)
            for directory in stale { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
            #expect(try Self.run(["--", "true"]).status == 0)
            for directory in stale {
                let gone = !FileManager.default.fileExists(atPath: directory)
                if !gone { try? FileManager.default.removeItem(atPath: directory) }
                #expect(gone, "\(directory) was swept")
            }
        }

        @Test(
            "bad limits are clear errors before anything is created",
            arguments: [["--memory", "12q"], ["--cpus", "-1"], ["--pids", "0"], ["--cpuset", "99"], ["--cpu-shares", "1"]])
        func badLimits(arguments: [String]) throws {
            let outcome = try Self.run(arguments + ["--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("lesson07-cgroups: invalid \(arguments[0]) \"\(arguments[1])\""))
        }

        @Test("the limits are the files the v1 driver writes, named in --explain")
        func explainShowsFiles() throws {
            let outcome = try Self.run(["--explain", "--memory", "32m", "--pids", "20", "--", "true"])
            #expect(outcome.status == 0)
            #expect(outcome.stderr.contains(try CgroupLayout.host().description))
            if try CgroupLayout.host().mode != .unified {
                #expect(outcome.stderr.contains("/memory.limit_in_bytes\", \"33554432\")"))
                #expect(outcome.stderr.contains("/pids.max\", \"20\")"))
            } else {
                #expect(outcome.stderr.contains("/memory.max\", \"33554432\")"))
            }
        }
    }
}

extension RealTests {
    static let layerFixtures = Host.repository.appendingPathComponent("rootfs-samples/build/layers").path

    /// No scratch workspace of a union lesson is left in the temporary directory.
    static func expectNoWorkspaceLeft(_ lesson: String) throws {
        let left = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory()).filter { $0.hasPrefix("skiff-\(lesson)-") }
        #expect(left.isEmpty, "workspaces left: \(left)")
    }

    @Suite("lesson 08: union filesystem")
    struct Lesson08Union {
        let base = RealTests.layerFixtures + "/base.tar.gz"
        let change = RealTests.layerFixtures + "/change.tar.gz"

        @Test("every command in lessons/08-union/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "08-union")
        }

        @Test("later layers win, a whiteout hides a file, an opaque directory hides what is below")
        func mergedView() throws {
            try RealTests.expectHostMountsUnchanged {
                let outcome = try lesson(
                    "lesson08-union",
                    ["--layer", base, "--layer", change, "--", "sh", "-c", "cat /etc/app.conf; ls /data; ls /docs; ls /bin/busybox"])
                #expect(outcome.status == 0)
                #expect(outcome.lines == ["version=2", "keep", "c.txt", "/bin/busybox"])
            }
            try RealTests.expectNoWorkspaceLeft("lesson08")
        }

        @Test("rm inside leaves a 0/0 whiteout in the upper directory, files land as uid 0, and --diff reports them")
        func whiteoutAndDiff() throws {
            let upper = NSTemporaryDirectory() + "skiff-test-upper-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: upper) }
            let run = try lesson(
                "lesson08-union", ["--layer", base, "--upper", upper, "--", "sh", "-c", "rm /etc/motd && echo hi > /etc/greeting && id -u"])
            #expect(run.status == 0 && run.stdout == "0\n")
            let whiteout = try #require(FileTree.lstatInfo(upper + "/etc/motd"))
            #expect(Whiteout.isWhiteout(whiteout))
            let greeting = try #require(FileTree.lstatInfo(upper + "/etc/greeting"))
            #expect(greeting.st_uid == 0, "the container's root writes as uid 0 on disk (idmapped)")
            let diff = try lesson("lesson08-union", ["--layer", base, "--diff", upper])
            #expect(diff.lines == ["C /etc", "A /etc/greeting", "D /etc/motd"])
            let siblings = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
            #expect(
                !siblings.contains { $0.hasPrefix(".\((upper as NSString).lastPathComponent).skiff-work") }, "the work directory is gone")
        }

        @Test("--export-layer writes an OCI layer and prints digests that match the file")
        func exportLayer() throws {
            let scratch = try Scratch()
            defer { scratch.cleanUp() }
            let upper = scratch.path + "/upper"
            _ = try lesson("lesson08-union", ["--upper", upper, "--", "sh", "-c", "rm /etc/group; echo x > /root-note"])
            let out = scratch.path + "/layer.tar.gz"
            let export = try lesson("lesson08-union", ["--export-layer", upper, out])
            #expect(export.status == 0)
            #expect(export.stdout.contains("digest  \(try sha256(of: out))"))
            #expect(try tarNames(out).sorted() == ["etc/", "etc/.wh.group", "root-note"])
        }

        @Test("a missing layer is a clear error, and nothing is left")
        func badLayer() throws {
            let outcome = try lesson("lesson08-union", ["--layer", "/nonexistent-layer.tar.gz", "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("/nonexistent-layer.tar.gz does not exist"))
            try RealTests.expectNoWorkspaceLeft("lesson08")
        }
    }

    @Suite("lesson 09: the init layer")
    struct Lesson09InitLayer {
        @Test("every command in lessons/09-init-layer/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "09-init-layer")
        }

        @Test("/etc/hosts, /etc/hostname and /etc/resolv.conf are the container's, writable, and absent from the diff")
        func initFiles() throws {
            let upper = NSTemporaryDirectory() + "skiff-test-upper-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: upper) }
            let outcome = try lesson(
                "lesson09-init-layer",
                [
                    "--hostname", "web1", "--dns", "192.0.2.53", "--upper", upper, "--",
                    "sh", "-c",
                    "grep web1 /etc/hosts; cat /etc/hostname; grep nameserver /etc/resolv.conf; echo '10.0.0.9 db' >> /etc/hosts && tail -n 1 /etc/hosts; touch /tmp/note",
                ])
            #expect(outcome.status == 0)
            #expect(outcome.lines == ["127.0.1.1\tweb1", "web1", "nameserver 192.0.2.53", "10.0.0.9 db"])
            let diff = try lesson("lesson08-union", ["--diff", upper])
            #expect(diff.lines == ["C /tmp", "A /tmp/note"], "the init files never reach the writable layer")
            try RealTests.expectNoWorkspaceLeft("lesson09")
        }

        @Test("a bad --dns is refused before anything is created")
        func badDNS() throws {
            let outcome = try lesson("lesson09-init-layer", ["--dns", "not-an-address", "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("invalid --dns \"not-an-address\""))
        }
    }
}

extension RealTests {
    @Suite("lesson 10: veth, bridge, NAT, ports, names")
    struct Lesson10VethBridge {
        /// A bridge and subnet of the tests' own, so nothing of a real skiff0 is touched.
        static let network = ["--bridge", "sktest0", "--subnet", "10.213.0.0/24"]
        static let probe = Host.sampleRootfs + "/probe"

        static func container(_ name: String, _ arguments: [String]) throws -> Started {
            try Started(Host.executable("lesson10-veth-bridge"), ["--name", name] + network + arguments)
        }

        /// Nothing of the test network is left: no bridge, no veth, no NAT table, no lease.
        static func expectNetworkGone(bridge: String = "sktest0") throws {
            let links = try Files.names(in: "/sys/class/net")
            #expect(!links.contains(bridge), "the bridge is removed")
            #expect(!links.contains { $0.hasPrefix("sk") && $0.count == 10 }, "no veth is left: \(links)")
            let nft = try Tool.run(try #require(Tool.find("nft")), ["list", "tables"])
            #expect(!nft.output.contains("skiff_\(bridge)"), "the NAT table is removed")
            let leases = (try? Files.readText("/run/skiff/networks/\(bridge).leases")) ?? ""
            #expect(leases.isEmpty, "no lease is left: \(leases)")
        }

        @Test("every command in lessons/10-veth-bridge/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "10-veth-bridge")
        }

        @Test("two containers exchange TCP data both ways, by name")
        func byName() throws {
            let server = try Self.container("srv", ["--", "/probe", "serve", "7000", "1"])
            try server.waitForOutput("listening 7000")
            let client = try lesson(
                "lesson10-veth-bridge", ["--name", "cli"] + Self.network + ["--", "/probe", "connect", "srv:7000", "hello"])
            #expect(client.status == 0)
            #expect(client.stdout == "echo srv: hello\n", "the client's words reached the server, and its answer came back")
            #expect(server.finish().status == 0)
            try Self.expectNetworkGone()
        }

        @Test("a container reaches a server on the bridge's gateway address")
        func gateway() throws {
            let keeper = try Self.container("keeper", ["--", "/probe", "serve", "7001", "1"])
            try keeper.waitForOutput("listening 7001")
            // The host's side of the bridge, 10.213.0.1, exists while a container holds a lease.
            let hostServer = try Started(Self.probe, ["serve", "17002", "1"])
            try hostServer.waitForOutput("listening 17002")
            let client = try lesson(
                "lesson10-veth-bridge", ["--name", "cli"] + Self.network + ["--", "/probe", "connect", "10.213.0.1:17002", "up"])
            #expect(client.stdout == "echo \(gethostnameString()): up\n")
            #expect(hostServer.finish().status == 0)
            _ = try lesson("lesson10-veth-bridge", ["--name", "cli2"] + Self.network + ["--", "/probe", "connect", "keeper:7001", "bye"])
            _ = keeper.finish()
            try Self.expectNetworkGone()
        }

        @Test("the host reaches a published port on 127.0.0.1 and gets the container's answer")
        func publishedPort() throws {
            let web = try Self.container("web", ["-p", "18181:7000", "--", "/probe", "serve", "7000", "1"])
            try web.waitForOutput("listening 7000")
            let taken = try lesson("lesson10-veth-bridge", ["--name", "other", "-p", "18181:80"] + Self.network + ["--", "true"])
            #expect(taken.status == 125)
            #expect(taken.stderr.contains("port 18181/tcp is already published by web"))
            let answer = try Started(Self.probe, ["connect", "127.0.0.1:18181", "from the host"]).finish()
            #expect(answer.stdout == "echo web: from the host\n")
            #expect(web.finish().status == 0)
            try Self.expectNetworkGone()
        }

        @Test("with iptables instead of nft, the published port works the same and its rules go away")
        func iptablesFallback() throws {
            let iptables = try #require(Tool.find("iptables"), "iptables is installed by make deps")
            let web = try Started(
                Host.executable("lesson10-veth-bridge"),
                ["--name", "web"] + Self.network + ["-p", "18182:7000", "--", "/probe", "serve", "7000", "1"],
                environment: ["SKIFF_FIREWALL": "iptables"])
            try web.waitForOutput("listening 7000")
            #expect(
                try Tool.run(iptables, ["-t", "nat", "-S", "SKIFF-sktest0"]).output.contains(
                    "--dport 18182 -j DNAT --to-destination 10.213.0.2:7000"))
            let answer = try Started(Self.probe, ["connect", "127.0.0.1:18182", "through iptables"]).finish()
            #expect(answer.stdout == "echo web: through iptables\n")
            #expect(web.finish().status == 0)
            let rules = try Tool.run(iptables, ["-t", "nat", "-S"]).output
            #expect(!rules.contains("SKIFF-sktest0") && !rules.contains("10.213.0.0/24"), "no rule is left: \(rules)")
            let tables = try Tool.run(try #require(Tool.find("nft")), ["list", "tables"]).output
            #expect(!tables.contains("table ip nat"), "iptables-nft's empty nat table is gone too: \(tables)")
            try Self.expectNetworkGone()
        }

        @Test("two containers started at once get different addresses")
        func distinctAddresses() throws {
            let first = try Self.container("twin1", ["--", "/probe", "addrs"])
            let second = try Self.container("twin2", ["--", "/probe", "addrs"])
            let addresses = [first.finish(), second.finish()].map { outcome in
                outcome.lines.first { $0.hasPrefix("eth0 ") } ?? "none"
            }
            #expect(addresses.allSatisfy { $0.hasPrefix("eth0 10.213.0.") && $0.hasSuffix("/24") }, "\(addresses)")
            #expect(addresses[0] != addresses[1])
            try Self.expectNetworkGone()
        }

        @Test("inside: eth0 with its address, the default route via the bridge, and lo")
        func insideView() throws {
            let outcome = try lesson(
                "lesson10-veth-bridge", ["--name", "look"] + Self.network + ["--", "sh", "-c", "/probe addrs; /probe routes"])
            #expect(outcome.lines.contains("eth0 10.213.0.2/24"))
            #expect(outcome.lines.contains("lo 127.0.0.1/8"))
            #expect(outcome.lines.contains("default via 10.213.0.1 dev eth0"))
            try Self.expectNetworkGone()
        }

        @Test(
            "bad network input is a clear error, and nothing is created",
            arguments: [
                (["-p", "99999:80"], "invalid -p \"99999:80\""),
                (["-p", "80"], "invalid -p \"80\""),
                (["-p", "8080:80/sctp"], "invalid -p \"8080:80/sctp\""),
                (["--subnet", "10.213.0.0/33"], "invalid subnet \"10.213.0.0/33\""),
                (["--subnet", "10.213.0.1/24"], "host bits are set"),
                (["--bridge", "a-name-far-too-long"], "invalid bridge name"),
                (["-p", "18190:80", "-p", "18190:81"], "both want host port 18190/tcp"),
            ] as [([String], String)])
        func badInput(arguments: [String], message: String) throws {
            let outcome = try lesson("lesson10-veth-bridge", ["--name", "bad"] + Self.network + arguments + ["--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains(message), "\(outcome.stderr)")
            try Self.expectNetworkGone()
        }

        @Test("joining an existing bridge with another subnet is refused")
        func subnetMismatch() throws {
            let keeper = try Self.container("keeper", ["--", "/probe", "serve", "7003", "1"])
            try keeper.waitForOutput("listening 7003")
            let outcome = try lesson(
                "lesson10-veth-bridge", ["--name", "stray", "--bridge", "sktest0", "--subnet", "10.213.1.0/24", "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("the bridge sktest0 exists with 10.213.0.1/24, not 10.213.1.1/24"))
            _ = try lesson(
                "lesson10-veth-bridge", ["--name", "closer"] + Self.network + ["--", "/probe", "connect", "keeper:7003", "bye"])
            _ = keeper.finish()
            try Self.expectNetworkGone()
        }

        @Test("a subnet that overlaps a host route is refused")
        func overlappingSubnet() throws {
            let route = try #require(HostRoutes.read().first { $0.device != "lo" }, "the host has a route")
            let outcome = try lesson(
                "lesson10-veth-bridge", ["--name", "bad", "--bridge", "sktest0", "--subnet", route.subnet.description, "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("overlaps the host's route"))
            try Self.expectNetworkGone()
        }
    }
}

extension RealTests {
    @Suite("lesson 11: capabilities, seccomp, no_new_privs, protected paths")
    struct Lesson11Security {
        static let network = ["--bridge", "sktest1", "--subnet", "10.219.0.0/24"]

        static func run(_ arguments: [String]) throws -> Outcome {
            try lesson("lesson11-security", Self.network + arguments)
        }

        @Test("every command in lessons/11-security/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "11-security")
        }

        @Test("inside the default container: the 14 capabilities, NoNewPrivs 1, Seccomp 2")
        func defaults() throws {
            let status = try Self.run(["--", "/probe", "status"]).lines
            #expect(status.contains("CapEff: 00000000a80425fb"))
            #expect(status.contains("CapBnd: 00000000a80425fb"))
            #expect(status.contains("NoNewPrivs: 1"))
            #expect(status.contains("Seccomp: 2"))
        }

        @Test("unshare, mount, keyctl, init_module and reboot fail with EPERM while ordinary syscalls work")
        func syscalls() throws {
            let names = ["unshare", "mount", "keyctl", "init_module", "reboot", "setns", "clone-newns", "getpid", "open", "read", "socket"]
            let outcome = try Self.run(["--", "sh", "-c", names.map { "/probe try-syscall \($0)" }.joined(separator: "; ")])
            #expect(
                outcome.lines == [
                    "unshare EPERM", "mount EPERM", "keyctl EPERM", "init_module EPERM", "reboot EPERM", "setns EPERM", "clone-newns EPERM",
                    "getpid ok", "open ok", "read ok", "socket ok",
                ])
            let unconfined = try Self.run([
                "--seccomp", "unconfined", "--", "sh", "-c", "/probe status | grep Seccomp; /probe try-syscall keyctl",
            ])
            #expect(unconfined.lines == ["Seccomp: 0", "keyctl ok"], "the filter, not the capabilities, stopped keyctl")
        }

        @Test("/proc/keys and /proc/timer_list are masked, /proc/sys is read-only, --read-only protects the root")
        func protectedPaths() throws {
            let outcome = try Self.run([
                "--", "sh", "-c",
                "/probe read-file /proc/keys; /probe read-file /proc/timer_list; /probe write /proc/sys/kernel/domainname x; /probe write /tmp/ok yes && echo tmp writable",
            ])
            #expect(outcome.lines == ["/proc/keys readable 0 bytes", "/proc/timer_list readable 0 bytes", "tmp writable"])
            #expect(outcome.stderr.contains("write /proc/sys/kernel/domainname: Read-only file system"))
            let readOnly = try Self.run(["--read-only", "--", "/probe", "write", "/etc/motd", "x"])
            #expect(readOnly.status == 1 && readOnly.stderr.contains("Read-only file system"))
        }

        @Test("--cap-drop ALL leaves no capability; --user 1000 runs as 1000 with none")
        func dropping() throws {
            let dropped = try Self.run(["--cap-drop", "ALL", "--", "/probe", "status"]).lines
            #expect(dropped.contains("CapEff: 0000000000000000") && dropped.contains("CapBnd: 0000000000000000"))
            let user = try Self.run(["--user", "1000", "--", "sh", "-c", "/probe uid; /probe status"]).lines
            #expect(user.first == "uid=1000 euid=1000 gid=0 egid=0")
            #expect(user.contains("CapEff: 0000000000000000") && user.contains("CapPrm: 0000000000000000"))
            let nobody = try Self.run([
                "--user", "nobody", "--ulimit", "nofile=512:1024", "--", "sh", "-c", "/probe uid; /probe rlimit nofile",
            ])
            #expect(nobody.lines == ["uid=65534 euid=65534 gid=65534 egid=65534", "nofile 512 1024"])
        }

        @Test("the host's lesson binary cannot be overwritten from inside through /proc/1/exe (CVE-2019-5736)")
        func procSelfExe() throws {
            // With --init, PID 1 stays the lesson binary: /proc/1/exe inside is the host's file.
            let binary = try Host.executable("lesson11-security")
            let before = try sha256(of: binary)
            let outcome = try Self.run([
                "--init", "--", "sh", "-c", "/probe cat /proc/1/comm; /probe write /proc/1/exe pwned; echo status $?",
            ])
            #expect(outcome.lines == ["lesson11-securi", "status 1"], "PID 1 is the host binary, and writing it fails")
            #expect(outcome.stderr.contains("write /proc/1/exe: Permission denied"))
            #expect(try sha256(of: binary) == before, "the binary is unchanged")
        }

        @Test("bad security input is refused before anything is created")
        func badInput() throws {
            let capability = try Self.run(["--cap-add", "CAP_FLY", "--", "true"])
            #expect(capability.status == 125 && capability.stderr.contains("unknown capability \"CAP_FLY\""))
            let profile = try Self.run(["--seccomp", "/nonexistent.json", "--", "true"])
            #expect(profile.status == 125 && profile.stderr.contains("cannot read the seccomp profile /nonexistent.json"))
            let user = try Self.run(["--user", "ghost", "--", "true"])
            #expect(user.status == 125 && user.stderr.contains("--user ghost: no such user"))
            try RealTests.Lesson10VethBridge.expectNetworkGone(bridge: "sktest1")
        }
    }
}

extension RealTests {
    @Suite("lesson 12: images")
    struct Lesson12Images {
        static let network = ["--bridge", "sktest12", "--subnet", "10.223.0.0/24"]

        @Test("every command in lessons/12-images/README.md runs as shown")
        func readme() throws {
            try ReadmeCheck.verify(lesson: "12-images")
        }

        @Test("the image's Cmd, WorkingDir, User and Env take effect; -e and --user override them")
        func configApplied() throws {
            let scratch = try TemporaryDirectory()
            let layout = scratch.path + "/oci", tarball = try ImageTests.sampleTar(in: scratch.path)
            func run(_ tool: String, _ arguments: [String]) throws -> Outcome {
                let path = tool == "umoci" ? try #require(Tool.find("umoci")) : try Host.executable(tool)
                let outcome = try Started(path, arguments).finish()
                #expect(outcome.status == 0, "\(tool) \(arguments): \(outcome.stderr)")
                return outcome
            }
            _ = try run("umoci", ["init", "--layout", layout])
            _ = try run("umoci", ["new", "--image", layout + ":app"])
            _ = try run("umoci", ["raw", "add-layer", "--image", layout + ":app", tarball])
            _ = try run(
                "umoci",
                [
                    "config", "--image", layout + ":app", "--config.env", "GREETING=hello", "--config.workingdir", "/tmp",
                    "--config.user", "nobody", "--config.cmd", "sh", "--config.cmd", "-c", "--config.cmd", "echo $GREETING; pwd; id -un",
                ])
            let store = scratch.path + "/store"
            let loaded = try run("skiff", ["--root", store, "load", "-q", "-i", layout])
            let id = try #require(loaded.lines.last?.components(separatedBy: "Loaded image ID: ").last)
            _ = try run("skiff", ["--root", store, "tag", id, "lab/app:1"])
            let image = Self.network + ["--store", store, "--image", "lab/app:1"]
            #expect(try lesson("lesson12-images", image).lines == ["hello", "/tmp", "nobody"])
            #expect(
                try lesson("lesson12-images", image + ["-e", "GREETING=bonjour", "--user", "root"]).lines == ["bonjour", "/tmp", "root"])
            #expect(try lesson("lesson12-images", image + ["--", "sh", "-c", "echo $GREETING"]).lines == ["hello"])
        }

        @Test("an image in neither the store nor its registry is exit status 125 with a clear message")
        func unknownImage() throws {
            let registry = try LocalRegistry()
            defer { registry.stop() }
            let scratch = try TemporaryDirectory()
            let name = "\(registry.name)/lab/nope:1"
            let outcome = try lesson("lesson12-images", Self.network + ["--store", scratch.path + "/store", "--image", name, "--", "true"])
            #expect(outcome.status == 125)
            #expect(outcome.stderr.contains("lesson12-images: pull \(name): not found in \(registry.name)"))
            try RealTests.Lesson10VethBridge.expectNetworkGone(bridge: "sktest12")
        }
    }
}

extension RealTests {
    @Suite("skiff-runtime: bundles run for real")
    struct RuntimeRealTests {
        /// A bundle in a temporary directory whose root is the busybox sample.
        struct Bundle {
            let path = NSTemporaryDirectory() + "skiff-bundle-\(UUID().uuidString)"
            let stateRoot = NSTemporaryDirectory() + "skiff-runtime-state-\(UUID().uuidString)"

            init(_ arguments: [String], edit: (inout Spec) -> Void = { _ in }) throws {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                var spec = DefaultSpec.make()
                spec.root = Spec.Root(path: Host.sampleRootfs, readonly: true)
                spec.process?.args = arguments
                edit(&spec)
                try JSONEncoder().encode(spec).write(to: URL(fileURLWithPath: path + "/config.json"))
            }

            func runtime(_ arguments: [String]) throws -> Outcome {
                try Started(Host.executable("skiff-runtime"), ["--root", stateRoot] + arguments).finish()
            }

            func cleanUp() {
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: stateRoot)
            }
        }

        @Test("run: the process runs in the bundle's root with the spec's hostname, and its exit status comes back")
        func run() throws {
            let bundle = try Bundle(["sh", "-c", "hostname; /probe exists /.skiff-sample; exit 7"])
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "c1"])
            #expect(outcome.status == 7)
            #expect(outcome.lines == ["skiff", "yes"])
            #expect(try bundle.runtime(["list", "-q"]).stdout.isEmpty, "run deletes the container")
        }

        @Test("create waits, start runs, kill stops, delete removes the state and the cgroup")
        func lifecycle() throws {
            let bundle = try Bundle(["/probe", "sleep", "30"]) { $0.linux?.cgroupsPath = "/skiff/runtime-test-lifecycle" }
            defer { bundle.cleanUp() }
            let pidFile = bundle.path + "/pid"
            #expect(try bundle.runtime(["create", "--bundle", bundle.path, "--pid-file", pidFile, "c1"]).status == 0)
            let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
            #expect(try bundle.runtime(["state", "c1"]).stdout.contains("\"status\" : \"created\""))
            let memory = try CgroupLayout.host().v1Controllers["memory"].map { "\($0)/skiff/runtime-test-lifecycle" }
            if let memory { #expect(FileManager.default.fileExists(atPath: memory), "the container is in its cgroup before it runs") }
            let again = try bundle.runtime(["create", "--bundle", bundle.path, "c1"])
            #expect(again.status == 1 && again.stderr.contains("container c1 already exists"))
            #expect(try bundle.runtime(["start", "c1"]).status == 0)
            #expect(try bundle.runtime(["state", "c1"]).stdout.contains("\"status\" : \"running\""))
            #expect(try bundle.runtime(["ps", "c1"]).lines == ["PID", "\(pid)"])
            #expect(try bundle.runtime(["pause", "c1"]).status == 0)
            #expect(try bundle.runtime(["state", "c1"]).stdout.contains("\"status\" : \"paused\""))
            let frozen = try Files.readText("/proc/\(pid)/status").split(separator: "\n").first { $0.hasPrefix("State:") } ?? ""
            #expect(!frozen.contains("R (running)"), "the frozen process does not run: \(frozen)")
            #expect(try bundle.runtime(["resume", "c1"]).status == 0)
            #expect(try bundle.runtime(["update", "--memory", "67108864", "--pids-limit", "7", "c1"]).status == 0)
            if let memory {
                #expect(try Files.readText(memory + "/memory.limit_in_bytes") == "67108864\n")
                let pids = memory.replacingOccurrences(of: "/memory/", with: "/pids/")
                #expect(try Files.readText(pids + "/pids.max") == "7\n")
            }
            let busy = try bundle.runtime(["delete", "c1"])
            #expect(busy.status == 1 && busy.stderr.contains("container c1 is running: stop it first"))
            #expect(try bundle.runtime(["kill", "c1", "KILL"]).status == 0)
            for _ in 0..<200 where try bundle.runtime(["state", "c1"]).stdout.contains("running") { usleep(10_000) }
            #expect(try bundle.runtime(["state", "c1"]).stdout.contains("\"status\" : \"stopped\""))
            #expect(try bundle.runtime(["delete", "c1"]).status == 0)
            #expect(try bundle.runtime(["list", "-q"]).stdout.isEmpty)
            if let memory { #expect(!FileManager.default.fileExists(atPath: memory), "the cgroup is removed") }
        }

        @Test("exec joins a running container: its namespaces, its cgroup, its security; -d leaves it running")
        func exec() throws {
            let bundle = try Bundle(["/probe", "sleep", "30"]) { $0.linux?.cgroupsPath = "/skiff/runtime-test-exec" }
            defer { bundle.cleanUp() }
            #expect(try bundle.runtime(["create", "--bundle", bundle.path, "e1"]).status == 0)
            #expect(try bundle.runtime(["start", "e1"]).status == 0)
            let joined = try bundle.runtime([
                "exec", "e1", "sh", "-c", "echo $$; hostname; /probe status | grep -E 'Seccomp|CapEff'; exit 5",
            ])
            #expect(joined.status == 5, "\(joined.stderr)")
            #expect(
                joined.lines == ["2", "skiff", "CapEff: 00000000a80425fb", "Seccomp: 2"],
                "PID 2 beside the init, the spec's hostname and security")
            let detached = try bundle.runtime(["exec", "--detach", "--pid-file", bundle.path + "/exec.pid", "e1", "/probe", "sleep", "30"])
            #expect(detached.status == 0, "\(detached.stderr)")
            let pid = try String(contentsOfFile: bundle.path + "/exec.pid", encoding: .utf8)
            #expect(try bundle.runtime(["ps", "e1"]).lines.contains(pid), "the exec'd process is in the container's cgroup")
            #expect(try bundle.runtime(["delete", "--force", "e1"]).status == 0)
            let stopped = try bundle.runtime(["exec", "e1", "true"])
            #expect(stopped.status == 1 && stopped.stderr.contains("container e1 does not exist"))
        }

        @Test("the container sees the spec: env, cwd, user, capabilities, no_new_privs, seccomp, rlimits, masked and read-only paths")
        func conformance() throws {
            let script = """
                echo "FOO=$FOO"; pwd; /probe uid; /probe status | grep -E 'CapEff|NoNewPrivs|Seccomp|Groups'; /probe rlimit nofile; \
                /probe read-file /proc/keys; /probe write /proc/sys/kernel/domainname x 2>&1; /probe write /etc/x y 2>&1; \
                cat /proc/sys/kernel/domainname; /probe try-syscall keyctl; cat /mnt/greeting; /probe write /mnt/x y 2>&1; true
                """
            let data = NSTemporaryDirectory() + "skiff-runtime-data-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: data) }
            try "hello from the host\n".write(toFile: data + "/greeting", atomically: false, encoding: .utf8)
            let bundle = try Bundle(["sh", "-c", script]) { spec in
                spec.process?.env?.append("FOO=bar")
                spec.process?.cwd = "/tmp"
                spec.process?.user = .init(uid: 1000, gid: 1000, additionalGids: [29])
                spec.process?.capabilities?.effective = ["CAP_KILL"]
                spec.process?.capabilities?.permitted = ["CAP_KILL"]
                spec.process?.capabilities?.bounding = ["CAP_KILL"]
                // A non-root process keeps capabilities across execve only as ambient ones,
                // which must also be inheritable (capabilities(7)).
                spec.process?.capabilities?.inheritable = ["CAP_KILL"]
                spec.process?.capabilities?.ambient = ["CAP_KILL"]
                spec.process?.rlimits = [.init(type: "RLIMIT_NOFILE", hard: 2048, soft: 512)]
                spec.linux?.sysctl = ["kernel.domainname": "example.test"]
                // Onto /mnt, which the sample has: a missing mount point would be made in the shared rootfs.
                spec.mounts?.append(.init(destination: "/mnt", type: "bind", source: data, options: ["rbind", "ro"]))
            }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "c1"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(
                outcome.lines == [
                    "FOO=bar", "/tmp", "uid=1000 euid=1000 gid=1000 egid=1000", "CapEff: 0000000000000020", "Seccomp: 2", "NoNewPrivs: 1",
                    "nofile 512 2048", "/proc/keys readable 0 bytes",
                    "probe: write /proc/sys/kernel/domainname: Read-only file system", "probe: write /etc/x: Read-only file system",
                    "example.test", "keyctl EPERM", "hello from the host", "probe: write /mnt/x: Read-only file system",
                ])
        }

        @Test("a user namespace from the spec's mappings")
        func userNamespace() throws {
            let bundle = try Bundle(["/probe", "idmap"]) { spec in
                spec.linux?.namespaces?.append(.init(type: "user"))
                spec.linux?.uidMappings = [.init(containerID: 0, hostID: 200_000, size: 65536)]
                spec.linux?.gidMappings = [.init(containerID: 0, hostID: 200_000, size: 65536)]
            }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "c1"])
            #expect(outcome.lines == ["uid 0 200000 65536", "gid 0 200000 65536"], "\(outcome.stderr)")
        }

        @Test("prestart and poststop hooks get the state on standard input")
        func hooks() throws {
            let log = NSTemporaryDirectory() + "skiff-hook-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let bundle = try Bundle(["true"]) { spec in
                let hook = Spec.Hook(path: "/bin/sh", args: ["sh", "-c", "cat >> \(log); echo >> \(log)"])
                spec.hooks = Spec.Hooks(prestart: [hook], poststop: [hook])
            }
            defer { bundle.cleanUp() }
            #expect(try bundle.runtime(["run", "--bundle", bundle.path, "hooked"]).status == 0)
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter {
                $0.contains("\"id\"") || $0.contains("status")
            }
            #expect(lines.filter { $0.contains("\"id\" : \"hooked\"") }.count == 2, "both hooks saw the container")
            #expect(
                lines.contains { $0.contains("\"status\" : \"creating\"") } && lines.contains { $0.contains("\"status\" : \"stopped\"") })
        }

        @Test("namespaces joined by path: another container's user, PID and network namespaces, with new mount and UTS ones")
        func joinedNamespaces() throws {
            let first = try Bundle(["/probe", "sleep", "30"]) { spec in
                spec.linux?.namespaces?.append(.init(type: "user"))
                spec.linux?.uidMappings = [.init(containerID: 0, hostID: 200_000, size: 65536)]
                spec.linux?.gidMappings = [.init(containerID: 0, hostID: 200_000, size: 65536)]
            }
            defer { first.cleanUp() }
            let pidFile = first.path + "/pid"
            #expect(try first.runtime(["create", "--bundle", first.path, "--pid-file", pidFile, "host1"]).status == 0)
            defer { _ = try? first.runtime(["delete", "--force", "host1"]) }
            #expect(try first.runtime(["start", "host1"]).status == 0)
            let pid = try String(contentsOfFile: pidFile, encoding: .utf8)
            func inode(_ name: String) -> String {
                var info = stat()
                return stat("/proc/\(pid)/ns/\(name)", &info) == 0 ? "\(info.st_ino)" : "missing"
            }
            let second = try Bundle(["sh", "-c", "echo $$; hostname; /probe ns"]) { spec in
                spec.hostname = "joiner"
                spec.linux?.namespaces = [
                    .init(type: "user", path: "/proc/\(pid)/ns/user"), .init(type: "pid", path: "/proc/\(pid)/ns/pid"),
                    .init(type: "network", path: "/proc/\(pid)/ns/net"), .init(type: "mount"), .init(type: "uts"), .init(type: "ipc"),
                ]
            }
            defer { second.cleanUp() }
            let outcome = try second.runtime(["run", "--bundle", second.path, "joiner"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            let seen = Dictionary(
                outcome.lines.dropFirst(2).compactMap { line -> (String, String)? in
                    let fields = line.split(separator: " ").map(String.init)
                    return fields.count == 2 ? (fields[0], fields[1]) : nil
                }, uniquingKeysWith: { first, _ in first })
            #expect(outcome.lines.first != "1", "not the first process of the joined PID namespace: \(outcome.lines)")
            #expect(outcome.lines.dropFirst().first == "joiner")
            for name in ["user", "pid", "net"] { #expect(seen[name] == inode(name), "the \(name) namespace is the first container's") }
            for name in ["mnt", "uts", "ipc"] { #expect(seen[name] != nil && seen[name] != inode(name), "a new \(name) namespace") }
            let refused = try Bundle(["true"]) { spec in
                spec.linux?.namespaces = [.init(type: "user", path: "/proc/\(pid)/ns/user"), .init(type: "pid"), .init(type: "mount")]
            }
            defer { refused.cleanUp() }
            let error = try refused.runtime(["run", "--bundle", refused.path, "refused"])
            #expect(error.status == 1 && error.stderr.contains("a new PID namespace with a joined user namespace is not supported"))
        }

        @Test(
            "createContainer runs before pivot_root, startContainer inside the container after start; a failing or slow hook stops create")
        func containerHooks() throws {
            let log = NSTemporaryDirectory() + "skiff-hook-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: log) }
            let bundle = try Bundle(["cat", "/dev/shm/start-state"]) { spec in
                spec.hooks = Spec.Hooks(
                    createContainer: [Spec.Hook(path: "/bin/sh", args: ["sh", "-c", "cat > \(log); test -e /proc/self/ns"])],
                    startContainer: [Spec.Hook(path: "/bin/sh", args: ["sh", "-c", "cat > /dev/shm/start-state"])])
            }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "hooks2"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.stdout.contains("\"status\" : \"created\""), "startContainer ran inside, before the process: \(outcome.stdout)")
            #expect(outcome.stdout.contains("\"pid\" : 1"), "the init's pid as the container sees it")
            let created = try String(contentsOfFile: log, encoding: .utf8)
            #expect(created.contains("\"id\" : \"hooks2\"") && created.contains("\"status\" : \"creating\""), "\(created)")

            for (hook, message) in [
                (Spec.Hook(path: "/bin/sh", args: ["sh", "-c", "echo no >&2; exit 3"]), "hook /bin/sh failed with exit status 3: no"),
                (
                    Spec.Hook(path: "/bin/sh", args: ["sh", "-c", "sleep 20"], timeout: 1),
                    "hook /bin/sh did not finish within its timeout of 1 s"
                ),
            ] {
                let failing = try Bundle(["true"]) { $0.hooks = Spec.Hooks(createContainer: [hook]) }
                defer { failing.cleanUp() }
                let error = try failing.runtime(["create", "--bundle", failing.path, "failing"])
                #expect(error.status == 1 && error.stderr.contains(message), "\(error.stderr)")
                #expect(try failing.runtime(["list", "-q"]).stdout.isEmpty, "nothing is left")
            }
        }

        @Test("the spec's resources are the container's own cgroup, which it sees read-only at /sys/fs/cgroup")
        func cgroupMount() throws {
            let layout = try CgroupLayout.host()
            let script: String
            let expected: [String]
            if layout.mode == .unified {
                script =
                    "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; /probe write /sys/fs/cgroup/pids.max 9 2>&1"
                expected = ["67108864", "50", "50000 100000", "probe: write /sys/fs/cgroup/pids.max: Read-only file system"]
            } else {
                script = """
                    ls /sys/fs/cgroup | grep -E '^(cpu|cpuacct|memory|pids)$'; cd /sys/fs/cgroup; \
                    cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.shares; \
                    /probe write /sys/fs/cgroup/pids/pids.max 9 2>&1; /probe exists /sys/fs/cgroup/pids/skiff || true
                    """
                expected = [
                    "cpu", "cpuacct", "memory", "pids", "67108864", "50", "50000", "512",
                    "probe: write /sys/fs/cgroup/pids/pids.max: Read-only file system", "no",
                ]
            }
            let bundle = try Bundle(["sh", "-c", script]) { spec in
                spec.linux?.resources = Spec.Linux.Resources(
                    memory: .init(limit: 64 << 20), cpu: .init(shares: 512, quota: 50000, period: 100_000), pids: .init(limit: 50),
                    devices: [.init(allow: false, access: "rwm")])
            }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "cgroupview"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.lines == expected, "the container's own limits, not the host's hierarchy")
        }

        @Test("more of the spec: annotations in the state, oom_score_adj, umask, groups, tmpfs options, no_new_privs off, devices")
        func moreConformance() throws {
            let v1 = try CgroupLayout.host().mode != .unified
            let script = """
                cat /proc/self/oom_score_adj; umask; id -G; grep ' /mnt ' /proc/mounts | cut -d' ' -f3,4 | grep -o 'tmpfs rw,nosuid,nodev'; \
                grep -o 'size=1024k' /proc/mounts; /probe status | grep NoNewPrivs; /probe read-file /dev/null; \
                \(v1 ? "grep 'c 10:200' /sys/fs/cgroup/devices/devices.list" : "echo c 10:200 rwm")
                """
            let bundle = try Bundle(["sh", "-c", script]) { spec in
                spec.annotations = ["org.example.team": "lab"]
                spec.process?.oomScoreAdj = 500
                spec.process?.user = .init(uid: 0, gid: 0, umask: 0o027, additionalGids: [10, 29])
                spec.process?.noNewPrivileges = false
                spec.mounts?.append(.init(destination: "/mnt", type: "tmpfs", source: "tmpfs", options: ["size=1m", "nosuid", "nodev"]))
                spec.linux?.resources?.devices = [
                    .init(allow: false, access: "rwm"), .init(allow: true, type: "c", major: 10, minor: 200, access: "rwm"),
                ]
            }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime(["run", "--bundle", bundle.path, "more"])
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(
                outcome.lines == [
                    "500", "0027", "0 10 29", "tmpfs rw,nosuid,nodev", "size=1024k", "NoNewPrivs: 0", "/dev/null readable 0 bytes",
                    "c 10:200 rwm",
                ])
            #expect(try bundle.runtime(["create", "--bundle", bundle.path, "annotated"]).status == 0)
            defer { _ = try? bundle.runtime(["delete", "--force", "annotated"]) }
            let state = try bundle.runtime(["state", "annotated"]).stdout
            #expect(state.contains("\"org.example.team\" : \"lab\""), "annotations are in the state: \(state)")
        }

        @Test("a broken config.json is refused with the field named, and nothing is left")
        func brokenConfig() throws {
            let bundle = try Bundle(["true"]) { $0.process?.cwd = "relative" }
            defer { bundle.cleanUp() }
            let outcome = try bundle.runtime([
                "--log", bundle.path + "/log.json", "--log-format", "json", "create", "--bundle", bundle.path, "c1",
            ])
            #expect(outcome.status == 1)
            #expect(outcome.stderr.contains("config.json: process.cwd \"relative\" must be absolute"))
            #expect(try String(contentsOfFile: bundle.path + "/log.json", encoding: .utf8).contains("\"level\":\"error\""))
            #expect(try bundle.runtime(["list", "-q"]).stdout.isEmpty)
        }
    }
}

extension RealTests {
    /// Docker drives skiff-runtime as it drives runc: a dockerd of the test's own (temporary data
    /// root, exec root and socket; no bridge, no iptables) with `--runtime skiff`.
    @Suite("skiff-runtime under Docker", .enabled(if: Tool.find("dockerd") != nil, "dockerd is not installed (apt-get install docker.io)"))
    struct RuntimeDockerTests {
        @Test("docker run --runtime skiff runs the sample image, returns its output and exit status, and docker stop stops it")
        func dockerRun() throws {
            let dockerd = try TestDockerDaemon(runtimes: ["skiff": try Host.executable("skiff-runtime")])
            defer { dockerd.stop() }
            let root = dockerd.root
            func run(_ arguments: [String], input: String = "") throws -> Tool.Result { try dockerd.run(arguments, input: input) }
            // The busybox sample as an image, as `docker import` makes one from a rootfs tar.
            let tarball = root + "/rootfs.tar"
            let tar = try Tool.run(try #require(Tool.find("tar")), ["-C", Host.sampleRootfs, "-cf", tarball, "."])
            try #require(tar.status == 0)
            #expect(try run(["import", tarball, "skiff-sample:test"]).status == 0)

            let once = try run([
                "run", "--rm", "--runtime", "skiff", "--network", "none", "--hostname", "from-docker", "skiff-sample:test",
                "sh", "-c", "hostname; /probe status | grep -E 'CapEff|Seccomp'; exit 3",
            ])
            #expect(once.status == 3, "\(once.errorOutput)")
            #expect(
                once.output == "from-docker\nCapEff: 00000000a80425fb\nSeccomp: 2\n",
                "Docker's capabilities and seccomp profile, applied by skiff-runtime")

            let detached = try run([
                "run", "-d", "--runtime", "skiff", "--network", "none", "--name", "d1", "skiff-sample:test",
                "sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done",
            ])
            #expect(detached.status == 0, "\(detached.errorOutput)")
            #expect(try run(["ps", "--format", "{{.Names}}"]).output == "d1\n")
            #expect(try run(["pause", "d1"]).status == 0)
            #expect(try run(["ps", "--format", "{{.Status}}"]).output.contains("(Paused)"))
            #expect(try run(["unpause", "d1"]).status == 0)
            let execTerminal = try run(["exec", "-t", "d1", "tty"])
            #expect(
                execTerminal.status == 0 && execTerminal.output.hasPrefix("/dev/pts/"),
                "docker exec -t: \(execTerminal.output) \(execTerminal.errorOutput)")
            let exec = try run(["exec", "d1", "/probe", "ppid"])
            #expect(
                exec.status == 0 && exec.output == "0\n",
                "docker exec: the parent is outside the container's PID namespace: \(exec.errorOutput)")
            #expect(try run(["stop", "-t", "10", "d1"]).status == 0)
            #expect(try run(["logs", "d1"]).output == "started\ngot TERM\n")
            #expect(try run(["inspect", "d1", "--format", "{{.State.ExitCode}}"]).output == "0\n")
            #expect(try run(["rm", "d1"]).status == 0)
            #expect(try run(["rmi", "skiff-sample:test"]).status == 0)
        }
    }
}

extension RealTests {
    /// containerd drives skiff-runtime through its runc shim (`ctr run --runc-binary`).
    @Suite(
        "skiff-runtime under containerd",
        .enabled(if: Tool.find("containerd") != nil && Tool.find("ctr") != nil, "containerd is not installed"))
    struct RuntimeContainerdTests {
        @Test("ctr run --runc-binary skiff-runtime runs a rootfs and returns the output and exit status")
        func ctrRun() throws {
            let root = NSTemporaryDirectory() + "skiff-containerd-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            // A wrapper that records each call, to show that containerd ran skiff-runtime.
            let wrapper = root + "/runtime.sh"
            try "#!/bin/sh\necho \"$*\" >> \(root)/calls\nexec \(try Host.executable("skiff-runtime")) \"$@\"\n"
                .write(toFile: wrapper, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper)
            try "version = 2\nroot = \"\(root)/root\"\nstate = \"\(root)/state\"\n[grpc]\n  address = \"\(root)/containerd.sock\"\n"
                .write(toFile: root + "/config.toml", atomically: false, encoding: .utf8)
            let daemon = try Started(try #require(Tool.find("containerd")), ["--config", root + "/config.toml"])
            defer {
                daemon.process.terminate()
                _ = daemon.finish(seconds: 30)
                try? FileManager.default.removeItem(atPath: root)
                // ctr's cgroupsPath is /default/ID: the parent is ctr's to leave, and ours to tidy.
                for hierarchy in (try? Files.names(in: "/sys/fs/cgroup")) ?? [] { rmdir("/sys/fs/cgroup/\(hierarchy)/default") }
            }
            let ctr = try #require(Tool.find("ctr"))
            var ready = false
            for _ in 0..<300 where !ready {
                ready = (try? Tool.run(ctr, ["-a", root + "/containerd.sock", "version"]))?.status == 0
                if !ready { usleep(100_000) }
            }
            try #require(ready, "containerd started")
            let outcome = try Tool.run(
                ctr,
                [
                    "-a", root + "/containerd.sock", "run", "--rm", "--runc-binary", wrapper, "--rootfs", Host.sampleRootfs, "c1",
                    "sh", "-c", "echo via containerd; /probe ppid; exit 4",
                ])
            #expect(outcome.status == 4, "\(outcome.errorOutput)")
            #expect(outcome.output == "via containerd\n1\n", "the shell is PID 1 of its own PID namespace")
            let calls = try String(contentsOfFile: root + "/calls", encoding: .utf8)
            #expect(calls.contains(" create ") && calls.contains(" start ") && calls.contains(" delete "), "\(calls)")
        }
    }
}
