import ArgumentParser
// Lesson 07: cgroups. Namespaces decide what a container sees; cgroups decide how much it may use:
// memory, CPU time, processes.
@preconcurrency import Glibc
import SkiffCgroups
import SkiffKernel
import SkiffLesson
import SkiffNamespaces
import SkiffNetwork
import SkiffRootfs

@main
struct Lesson07Cgroups: Lesson {
    static let configuration = CommandConfiguration(
        commandName: "lesson07-cgroups",
        abstract: "Run a command with limits on memory, CPU and processes (cgroups v1 or v2).")

    @Option(help: "The hostname inside.") var hostname = "skiff"
    @Option(help: "The directory that becomes / (default: the busybox sample).") var rootfs = RootfsPlan.sample
    @Option(help: "The host uid (and gid) that root inside maps to.") var mapRootTo: UInt32 = 100000
    @Flag(help: "Run a tiny init as PID 1 (see lesson 02).") var `init` = false
    @OptionGroup(title: "Limits") var limitOptions: LimitOptions
    @OptionGroup var lesson: LessonOptions

    func run(kernel: Kernel) throws -> ExitStatus {
        let hostname = try Hostname(validating: hostname)
        let mapping = try IDMapping(rootTo: mapRootTo)
        var plan = try RootfsPlan(validating: rootfs)
        plan.devices = .bindFromHost  // lesson 05
        let command = lesson.commandLine
        let environment = plan.environment(hostname: hostname.value)
        let useInit = self.`init`

        // The new layer. Every limit is checked before anything is created (--memory 12q fails
        // here), then the host's cgroup layout, v1 or v2, is read from the mount table and picks
        // the driver that knows its file names.
        let limits = try limitOptions.limits()
        let layout = try CgroupLayout.host()
        let cgroup = try Cgroups.open(name: "lesson07-\(getpid())", limits: limits, layout: layout, kernel: kernel)

        // create -> run -> read the counters -> destroy, destroyed also if the start fails.
        let (status, counters) = try cgroup.around {
            let namespaces: NamespaceSet = [.user, .uts, .pid, .mount, .ipc, .network]
            let child = try ContainerProcess.clone(namespaces, kernel: kernel, why: "a child that waits until it is in its cgroup") {
                side in
                try UserNamespace.becomeRoot(kernel: kernel)  // lesson 05
                try UTSNamespace.setHostname(hostname, kernel: kernel)  // lesson 01
                try Rootfs.enter(plan, kernel: kernel)  // lesson 03
                try IPCNamespace.mountMessageQueues(at: "/dev/mqueue", kernel: kernel)  // lesson 04
                try Link.bringUp("lo", kernel: kernel)  // lesson 06
                try PIDNamespace.run(command, environment: environment, withInit: useInit, side: side, kernel: kernel)
            }
            try child.start {
                try UserNamespace.writeMaps(for: child.pid, uid: mapping, gid: mapping, kernel: kernel)  // lesson 05
                // Into the cgroup while it still waits: nothing it runs escapes the limits.
                try cgroup.add(child.pid)
            }
            return try child.wait()
        }
        limitOptions.report(counters, limits: limits).forEach { say($0) }
        return status
    }
}
