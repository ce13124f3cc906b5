import Foundation
import Testing

@testable import SkiffKernel
@testable import SkiffSecurity

@Suite("lesson 11: capability sets, seccomp profiles, users and limits")
struct Lesson11SecurityPureTests {
    @Test("the default set is Docker's 14, names take CAP_ or not, ALL works both ways")
    func capabilities() throws {
        #expect(CapabilitySet.containerDefault.names.count == 14)
        #expect(CapabilitySet.containerDefault.bits == 0xa80425fb, "the mask /proc/PID/status shows for Docker's default")
        let adjusted = try CapabilitySet.adjusted(adding: ["CAP_NET_ADMIN", "sys_ptrace"], dropping: ["chown", "CAP_KILL"])
        #expect(adjusted.names.contains("net_admin") && adjusted.names.contains("sys_ptrace"))
        #expect(!adjusted.names.contains("chown") && !adjusted.names.contains("kill"))
        #expect(try CapabilitySet.adjusted(adding: [], dropping: ["ALL"]).bits == 0)
        #expect(try CapabilitySet.adjusted(adding: ["ALL"], dropping: []) == .all)
        #expect(try CapabilitySet.adjusted(adding: ["net_raw"], dropping: ["ALL"]).names == ["net_raw"])
        #expect(throws: SkiffError.self) { try CapabilitySet(names: ["CAP_FLY"]) }
    }

    @Test("the default profile allows ordinary calls, leaves out the blocked ones, and compiles to BPF")
    func defaultProfile() throws {
        let profile = SeccompProfile.containerDefault
        let allowed = Set(profile.syscalls?.first?.names ?? [])
        for name in ["read", "write", "openat", "execve", "exit_group", "socket", "fork", "wait4"] {
            #expect(allowed.contains(name), "\(name) is allowed")
        }
        for name in ["mount", "unshare", "setns", "keyctl", "bpf", "ptrace", "reboot", "init_module", "clone", "clone3"] {
            #expect(!allowed.contains(name), "\(name) is not in the plain allow-list")
        }
        let program = try profile.compile()
        #expect(program.count > 0 && program.count % 8 == 0, "whole sock_filter instructions")
    }

    @Test("a malformed profile is rejected with the field named")
    func malformedProfiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-seccomp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [(String, String)] = [
            (#"{"syscalls": []}"#, "defaultAction is missing"),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}"#,
                "syscalls[0].names has the wrong type"
            ),
            (#"{"defaultAction": "SCMP_ACT_MAYBE"}"#, "defaultAction \"SCMP_ACT_MAYBE\" is not valid"),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}"#,
                "syscalls[0].action \"ALLOW\" is not valid"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
                "syscalls[0].args[0].op \"SCMP_CMP_SOMETIMES\" is not valid"
            ),
            (
                #"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
                "architectures[0] \"SCMP_ARCH_Z80\" is not valid"
            ),
            ("{ not json", "is not valid JSON"),
        ]
        for (index, (text, message)) in cases.enumerated() {
            let file = directory.appendingPathComponent("\(index).json").path
            try text.write(toFile: file, atomically: false, encoding: .utf8)
            #expect {
                _ = try SeccompProfile.load(file)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        let good = directory.appendingPathComponent("good.json").path
        try
            #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["keyctl", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}"#
            .write(toFile: good, atomically: false, encoding: .utf8)
        #expect(try SeccompProfile.load(good).compile().count > 0, "unknown syscall names are skipped, as Docker does")
    }

    @Test("Docker's conditional rules are decided for the container's capabilities, arch and kernel")
    func conditionalRules() throws {
        let text = #"""
            {"defaultAction": "SCMP_ACT_ERRNO",
             "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
             "syscalls": [
               {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
               {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
               {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
               {"names": ["vm86"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
               {"names": ["keyctl"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
               {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {}}
             ]}
            """#
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-conditional-\(UUID().uuidString).json").path
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let profile = try SeccompProfile.load(file)
        let plain = profile.resolved(for: .containerDefault).syscalls?.flatMap(\.names)
        #expect(plain == ["read", "ptrace", "keyctl", "getpid"])
        let admin = profile.resolved(for: try CapabilitySet.adjusted(adding: ["SYS_ADMIN"], dropping: [])).syscalls?.flatMap(\.names)
        #expect(admin == ["read", "mount", "ptrace", "getpid"])
        #expect(profile.resolved(for: .containerDefault).architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        #expect(try profile.resolved(for: .containerDefault).compile().count > 0)
    }

    @Test("--user resolves names, numbers, groups and supplementary groups from the container's files")
    func users() throws {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n"
        let group = "root:x:0:\nweb:x:1000:\naudio:x:29:web,other\nnogroup:x:65534:\n"
        #expect(
            try UserSpec(parsing: "web").resolve(passwd: passwd, group: group) == .init(uid: 1000, gid: 1000, supplementaryGroups: [29]))
        #expect(
            try UserSpec(parsing: "1000").resolve(passwd: passwd, group: group) == .init(uid: 1000, gid: 1000, supplementaryGroups: [29]))
        #expect(try UserSpec(parsing: "4242").resolve(passwd: passwd, group: group) == .init(uid: 4242, gid: 0, supplementaryGroups: []))
        #expect(
            try UserSpec(parsing: "nobody:audio").resolve(passwd: passwd, group: group)
                == .init(uid: 65534, gid: 29, supplementaryGroups: []))
        #expect(throws: SkiffError.self) { try UserSpec(parsing: "ghost").resolve(passwd: passwd, group: group) }
        #expect(throws: SkiffError.self) { try UserSpec(parsing: "web:ghosts").resolve(passwd: passwd, group: group) }
        #expect(throws: SkiffError.self) { try UserSpec(parsing: "a:b:c") }
    }

    @Test("--ulimit takes NAME=SOFT[:HARD] with SOFT <= HARD")
    func resourceLimits() throws {
        let limit = try ResourceLimitSpec(parsing: "nofile=1024:2048")
        #expect(limit.resource == 7 && limit.soft == 1024 && limit.hard == 2048)
        #expect(try ResourceLimitSpec(parsing: "core=-1").soft == UInt64.max)
        for bad in ["nofile", "files=1", "nofile=2048:1024", "nofile=a", "nofile=1:2:3"] {
            #expect(throws: SkiffError.self, "\(bad)") { try ResourceLimitSpec(parsing: bad) }
        }
    }
}
