import SkiffKernel

/// Links by name: bring up, and for the bridge network create, enslave and delete.
public enum Link {
    /// Brings a link up by name: RTM_NEWLINK with ifi_change = ifi_flags = IFF_UP.
    public static func bringUp(_ name: String, namespacePID: Int32? = nil, kernel: Kernel) throws(SyscallError) {
        try kernel.run(
            .netlink(RouteMessage.setFlags(link: name, up: true, namespacePID: namespacePID)),
            why: "bring \(name) up: a new network namespace starts with every link down")
    }
}
