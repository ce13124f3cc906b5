@preconcurrency import Glibc
import SkiffKernel

/// The init layer, as Docker has it: a per-container layer between the image and the writable
/// layer. It holds what the container needs to find in place but must never end up in the
/// image: empty /etc/hosts, /etc/hostname and /etc/resolv.conf (mount targets, real content is
/// bind-mounted over them) and the mount points /proc, /sys, /dev. Because the files are
/// bind-mounted, the container may write them, yet they are never part of a diff or a commit:
/// writes go to the container's own copies, not to the upper directory.
public struct InitLayer: Sendable {
    /// The lower layer of placeholders.
    public let layer: String
    /// The real files, one per placeholder.
    public let files: String

    static let fileNames = ["hosts", "hostname", "resolv.conf"]
    static let mountPoints = ["proc", "sys", "dev", "etc"]

    /// Writes the layer and the files under `directory`. The files belong to `owner` (the host
    /// uid of the container's root) so that the container can change them at run time.
    public init(
        in directory: String, hostname: String, address: String?, nameservers: [String]?,
        hostResolvConf: String = "/etc/resolv.conf", owner: uid_t
    ) throws(SkiffError) {
        layer = directory + "/layer"
        files = directory + "/files"
        let hosts = Self.hosts(hostname: hostname, address: address)
        let resolvConf = Self.resolvConf(host: (try? Files.readText(hostResolvConf)) ?? "", nameservers: nameservers)
        do {
            for mountPoint in Self.mountPoints { try Files.makeDirectories("\(layer)/\(mountPoint)") }
            try Files.makeDirectories(files)
            for (name, contents) in zip(Self.fileNames, [hosts, hostname + "\n", resolvConf]) {
                try writeFile("\(layer)/etc/\(name)", "", owner: 0)
                try writeFile("\(files)/\(name)", contents, owner: owner)
            }
        } catch {
            throw SkiffError(.setupFailed, "cannot write the init layer in \(directory)", cause: error)
        }
    }

    /// Binds each file over its placeholder in the container's root, before pivot_root.
    public func bindFiles(into root: String, kernel: Kernel) throws(SyscallError) {
        for name in Self.fileNames {
            try kernel.run(
                .mount(source: "\(files)/\(name)", target: "\(root)/etc/\(name)", fstype: nil, flags: [.bind], data: nil),
                why: "/etc/\(name) of this container: writable, but never in a diff or an image")
        }
    }

    /// localhost for IPv4 and IPv6, the IPv6 names Debian lists, and the container's own name at
    /// its address; with no address yet (no network), at 127.0.1.1 as Debian does for a host
    /// without a permanent address.
    static func hosts(hostname: String, address: String?) -> String {
        """
        127.0.0.1\tlocalhost
        ::1\tlocalhost ip6-localhost ip6-loopback
        fe00::0\tip6-localnet
        ff00::0\tip6-mcastprefix
        ff02::1\tip6-allnodes
        ff02::2\tip6-allrouters
        \(address ?? "127.0.1.1")\t\(hostname)

        """
    }

    /// The host's resolv.conf without its loopback nameservers, which inside the container's own
    /// network namespace would point at the container itself (a systemd-resolved or dnsmasq
    /// stub on 127.0.0.53 is the common case), or the --dns servers instead. With none left,
    /// Docker's fallback: Google's public resolvers.
    static func resolvConf(host: String, nameservers: [String]?) -> String {
        var lines: [String] = []
        var kept: [String] = []
        for line in host.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.first == "nameserver", fields.count >= 2 {
                let server = String(fields[1])
                if nameservers == nil, !isLoopback(server) { kept.append(server) }
                continue
            }
            lines.append(line)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        var servers = nameservers ?? kept
        if servers.isEmpty { servers = ["8.8.8.8", "8.8.4.4"] }
        return (lines + servers.map { "nameserver \($0)" }).joined(separator: "\n") + "\n"
    }

    static func isLoopback(_ address: String) -> Bool { address.hasPrefix("127.") || address == "::1" }

    /// Checks --dns values: IPv4 or IPv6 addresses only.
    public static func validateNameservers(_ servers: [String]) throws(SkiffError) {
        for server in servers {
            var buffer = [UInt8](repeating: 0, count: 16)
            guard inet_pton(AF_INET, server, &buffer) == 1 || inet_pton(AF_INET6, server, &buffer) == 1 else {
                throw SkiffError(.invalidInput, "invalid --dns \"\(server)\": give an IPv4 or IPv6 address, e.g. 192.0.2.53")
            }
        }
    }
}

private func writeFile(_ path: String, _ contents: String, owner: uid_t) throws(SyscallError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
    try checked(fd, "create", path)
    defer { close(fd) }
    let bytes = Array(contents.utf8)
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    if written != bytes.count { throw SyscallError("write", path: path, errno: written < 0 ? errno : EIO) }
    try checked(fchown(fd, owner, owner), "chown", path)
}
