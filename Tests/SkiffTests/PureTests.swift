import Foundation
import Testing

@testable import SkiffKernel
@testable import SkiffNamespaces
@testable import SkiffNetwork
@testable import SkiffRootfs

@Suite("pure: plans, parsers and messages")
struct PureTests {
    @Test("namespace and mount flags print as C would write them")
    func flagNames() {
        #expect(NamespaceSet([.uts, .pid]).description == "CLONE_NEWUTS|CLONE_NEWPID")
        #expect(NamespaceSet([]).description == "0")
        #expect(NamespaceSet([.mount, .network]).procNames == ["mnt", "net"])
        #expect(MountFlags([.bind, .recursive]).description == "MS_BIND|MS_REC")
        #expect(MountFlags([.readOnly, .noSuid, .noDev, .noExec]).description == "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC")
    }

    @Test("a syscall describes itself with its real arguments")
    func syscallDescriptions() {
        #expect(Syscall.sethostname("demo").description == "sethostname(\"demo\", 4)")
        #expect(
            Syscall.mount(source: "proc", target: "/r/proc", fstype: "proc", flags: [.noSuid], data: nil).description
                == "mount(\"proc\", \"/r/proc\", \"proc\", MS_NOSUID, NULL)")
        #expect(Syscall.umount(".", detach: true).description == "umount2(\".\", MNT_DETACH)")
        #expect(Syscall.mknod("/d/null", mode: 0o666, major: 1, minor: 3).description == "mknod(\"/d/null\", S_IFCHR|0666, makedev(1, 3))")
        #expect(
            Syscall.writeFile("/proc/7/uid_map", contents: "0 100000 65536\n").description
                == "write(\"/proc/7/uid_map\", \"0 100000 65536\\n\")")
        #expect(Syscall.setParentDeathSignal(SIGKILL).description == "prctl(PR_SET_PDEATHSIG, SIGKILL)")
    }

    @Test("a syscall error names the operation, the path and the errno text")
    func syscallErrorText() {
        #expect(SyscallError("pivot_root", path: "/x", errno: EBUSY).description == "pivot_root /x: Device or resource busy")
        #expect(SyscallError("setgroups", errno: EPERM).description == "setgroups: Operation not permitted")
    }

    @Test("valid hostnames are accepted", arguments: ["a", "demo", "web-1", "a.b.c", String(repeating: "x", count: 63)])
    func validHostnames(name: String) throws {
        #expect(try Hostname(validating: name).value == name)
    }

    @Test(
        "invalid hostnames are refused with a message naming them",
        arguments: ["", "bad_name", "-lead", "trail-", "a..b", "ü", String(repeating: "x", count: 64), "white space"])
    func invalidHostnames(name: String) {
        #expect {
            _ = try Hostname(validating: name)
        } throws: { error in
            let error = error as! SkiffError
            return error.code == .invalidInput && error.message.contains("invalid hostname \"\(name)\"")
        }
    }

    @Test("an id mapping prints as uid_map lines do, and refuses root and overflow")
    func idMappings() throws {
        #expect(try IDMapping(rootTo: 100000).description == "0 100000 65536")
        #expect(throws: SkiffError.self) { try IDMapping(rootTo: 0) }
        #expect(throws: SkiffError.self) { try IDMapping(rootTo: UInt32.max - 10) }
    }

    @Test("exit statuses follow the shell: the code, or 128+signal")
    func exitStatuses() {
        #expect(ExitStatus.exited(7).code == 7)
        #expect(ExitStatus.signaled(SIGKILL).code == 137)
        #expect(SkiffError(.commandNotFound, "x").exitStatus == 127)
        #expect(SkiffError(.commandNotExecutable, "x").exitStatus == 126)
        #expect(SkiffError(.setupFailed, "x").exitStatus == 125)
    }

    @Test("the child's error report decodes to the error and exit status it sent")
    func childReport() {
        #expect(ChildSide.decode([]) == nil)
        let notFound = ChildSide.decode([127] + Array("exec nosuch: command not found".utf8))
        #expect(notFound?.code == .commandNotFound)
        #expect(notFound?.message == "exec nosuch: command not found")
        #expect(ChildSide.decode([125] + Array("mount: x".utf8))?.code == .setupFailed)
    }

    @Test("RTM_NEWLINK for lo is the exact rtnetlink message")
    func loopbackMessage() {
        let request = RouteMessage.setFlags(link: "lo", up: true)
        let expected: [UInt8] = [
            40, 0, 0, 0, 16, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0,  // nlmsghdr: len 40, RTM_NEWLINK, REQUEST|ACK, seq 1
            0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,  // ifinfomsg: index 0, flags IFF_UP, change IFF_UP
            7, 0, 3, 0, 108, 111, 0, 0,  // IFLA_IFNAME "lo\0", padded to 8
        ]
        #expect(request.message == expected)
        #expect(Syscall.netlink(request).description == "sendmsg(NETLINK_ROUTE, RTM_NEWLINK lo IFF_UP)")
    }

    @Test("mountinfo escapes are undone")
    func mountinfoEscapes() {
        #expect(unescapeMountField("/a\\040b") == "/a b")
        #expect(unescapeMountField("/plain") == "/plain")
    }

    @Test("mkdir refuses to follow a symlink a rootfs planted, and accepts a real directory")
    func mkdirRefusesSymlink() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-mkdir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let link = scratch.appendingPathComponent("proc").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc")
        #expect(throws: SyscallError("mkdir", path: link, errno: ENOTDIR)) {
            try LinuxSyscalls().perform(.mkdir(link, mode: 0o555))
        }
        let directory = scratch.appendingPathComponent("sys").path
        try LinuxSyscalls().perform(.mkdir(directory, mode: 0o555))
        try LinuxSyscalls().perform(.mkdir(directory, mode: 0o555))
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test("rootfs validation names the path and what to do")
    func rootfsValidation() {
        #expect {
            _ = try RootfsPlan(validating: "/nonexistent-skiff-rootfs")
        } throws: { error in
            (error as! SkiffError).message.contains("rootfs /nonexistent-skiff-rootfs does not exist")
        }
        #expect {
            _ = try RootfsPlan(validating: "/")
        } throws: { error in
            (error as! SkiffError).message.contains("the host's own root")
        }
        #expect {
            _ = try RootfsPlan(validating: "/etc/hostname")
        } throws: { error in
            (error as! SkiffError).message.contains("is not a directory")
        }
    }
}
