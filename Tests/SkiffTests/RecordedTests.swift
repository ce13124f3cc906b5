import Glibc
import Testing

@testable import SkiffKernel
@testable import SkiffNamespaces
@testable import SkiffNetwork
@testable import SkiffRootfs

/// The exact call sequences, recorded instead of made: no root needed.
@Suite("recorded: the order of the kernel calls")
struct RecordedTests {
    let recorder = RecordingSyscalls()
    var kernel: Kernel { Kernel(syscalls: recorder) }

    @Test("entering a rootfs: private mounts, bind, /proc, /sys, /dev, then pivot_root and detach")
    func enterRootfs() throws {
        try Rootfs.enter(RootfsPlan(unchecked: "/r"), kernel: kernel)
        let calls = recorder.calls
        #expect(calls.first == .mount(source: nil, target: "/", fstype: nil, flags: [.recursive, .private], data: nil))
        #expect(calls[1] == .mount(source: "/r", target: "/r", fstype: nil, flags: [.bind, .recursive], data: nil))
        #expect(calls.contains(.mount(source: "proc", target: "/r/proc", fstype: "proc", flags: [.noSuid, .noDev, .noExec], data: nil)))
        #expect(
            calls.contains(
                .mount(source: "sysfs", target: "/r/sys", fstype: "sysfs", flags: [.readOnly, .noSuid, .noDev, .noExec], data: nil)))
        #expect(calls.contains(.mknod("/r/dev/null", mode: 0o666, major: 1, minor: 3)))
        #expect(calls.contains(.symlink(target: "/proc/self/fd", path: "/r/dev/fd")))
        #expect(Array(calls.suffix(4)) == [.chdir("/r"), .pivotRoot(newRoot: ".", putOld: "."), .umount(".", detach: true), .chdir("/")])
        // Every mount point is made (refusing symlinks) before something is mounted on it.
        for case .mount(_, let target, _, _, _) in calls where target.hasPrefix("/r/") {
            let made =
                calls.firstIndex(of: .mkdir(target, mode: 0o555)) ?? calls.firstIndex(of: .mkdir(target, mode: 0o755))
                ?? calls.firstIndex(of: .mkdir(target, mode: 0o1777)) ?? calls.firstIndex(of: .createFile(target))
            let mounted = calls.firstIndex { if case .mount(_, target, _, _, _) = $0 { true } else { false } }
            #expect(made != nil && made! < mounted!, "mount point \(target) made first")
        }
    }

    @Test("in a user namespace, devices and /sys are bound from the host, never mknod'ed")
    func enterRootfsInUserNamespace() throws {
        try Rootfs.enter(RootfsPlan(unchecked: "/r", devices: .bindFromHost, sysfs: .bindFromHost), kernel: kernel)
        let calls = recorder.calls
        #expect(!calls.contains { if case .mknod = $0 { true } else { false } })
        #expect(calls.contains(.createFile("/r/dev/null")))
        #expect(calls.contains(.mount(source: "/dev/null", target: "/r/dev/null", fstype: nil, flags: [.bind], data: nil)))
        let bindSys = calls.firstIndex(of: .mount(source: "/sys", target: "/r/sys", fstype: nil, flags: [.bind, .recursive], data: nil))
        let remountSys = calls.firstIndex(
            of: .mount(
                source: nil, target: "/r/sys", fstype: nil, flags: [.noSuid, .noDev, .noExec, .remount, .bind, .readOnly], data: nil))
        #expect(bindSys != nil && remountSys != nil && bindSys! < remountSys!)
    }

    @Test("a failing pivot_root stops the sequence and names itself")
    func pivotRootFailure() {
        recorder.failures[.pivotRoot(newRoot: ".", putOld: ".")] = EINVAL
        #expect {
            try Rootfs.enter(RootfsPlan(unchecked: "/r"), kernel: kernel)
        } throws: { error in
            "\(error)".contains("pivot_root") && "\(error)".contains("Invalid argument")
        }
        #expect(recorder.calls.last == .pivotRoot(newRoot: ".", putOld: "."))
    }

    @Test("id maps: uid_map, then gid_map, written for the child's pid")
    func userMaps() throws {
        let mapping = try IDMapping(rootTo: 100000)
        try UserNamespace.writeMaps(for: 42, uid: mapping, gid: mapping, kernel: kernel)
        // As root the setgroups file is left alone; an unprivileged writer must deny it first.
        let setgroups: [Syscall] = geteuid() == 0 ? [] : [.writeFile("/proc/42/setgroups", contents: "deny\n")]
        #expect(
            recorder.calls == [.writeFile("/proc/42/uid_map", contents: "0 100000 65536\n")] + setgroups
                + [.writeFile("/proc/42/gid_map", contents: "0 100000 65536\n")])
    }

    @Test("becoming root inside: groups, gid, uid; the parent-death signal is set again only if one was set")
    func becomeRoot() throws {
        try UserNamespace.becomeRoot(kernel: kernel)
        // This test process has no parent-death signal, so none is set again.
        #expect(recorder.calls == [.setgroups([]), .setresgid(0), .setresuid(0)])
    }

    @Test("hostname, mqueue and lo are one call each")
    func smallLayers() throws {
        try UTSNamespace.setHostname(Hostname(validating: "demo"), kernel: kernel)
        try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)
        try Link.bringUp("lo", kernel: kernel)
        #expect(recorder.calls.count == 4)
        #expect(recorder.calls[0] == .sethostname("demo"))
        #expect(
            recorder.calls[2]
                == .mount(source: "mqueue", target: "/dev/mqueue", fstype: "mqueue", flags: [.noSuid, .noDev, .noExec], data: nil))
        #expect(recorder.calls[3] == .netlink(RouteMessage.setFlags(link: "lo", up: true)))
    }
}
