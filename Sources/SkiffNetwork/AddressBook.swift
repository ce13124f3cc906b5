@preconcurrency import Glibc
import SkiffKernel

/// One container's place on a bridge network.
public struct Lease: Equatable, Sendable {
    public let address: IPv4Address
    /// The process that holds the lease; when it is gone, the lease is stale.
    public let ownerPID: Int32
    public let name: String
    public let ports: [PortMapping]
    /// The container's /etc/hosts, which lists the other containers by name.
    public var hostsFile: String?
}

/// IP address management for one bridge: leases in a text file, changed only under an exclusive
/// flock(2), written atomically (temporary file, fsync, rename), so concurrent containers never
/// get the same address and a crash at any point leaves a readable file. Leases of processes that
/// are gone (a lesson killed with SIGKILL) are reclaimed by the next change.
public struct AddressBook: Sendable {
    public let file: String
    public let subnet: Subnet

    public init(directory: String, bridge: String, subnet: Subnet) {
        file = "\(directory)/\(bridge).leases"
        self.subnet = subnet
    }

    /// Runs `body` on the current leases while holding the lock, then saves what it left.
    /// `body` also gets the stale leases that were just dropped, to clean up after them.
    public func update<Result>(_ body: (inout [Lease], _ reclaimed: [Lease]) throws -> Result) throws -> Result {
        do {
            try Files.makeDirectories(parentDirectory(file))
        } catch {
            throw SkiffError(.setupFailed, "cannot create the network state directory", cause: error)
        }
        let lock: Files.FileLock
        do {
            lock = try Files.lock(file + ".lock")
        } catch {
            throw SkiffError(.setupFailed, "cannot lock the leases", cause: error)
        }
        defer { lock.release() }
        let all = try read()
        var live = all.filter { ProcFS().isRunning($0.ownerPID) }
        let reclaimed = all.filter { !ProcFS().isRunning($0.ownerPID) }
        let result = try body(&live, reclaimed)
        if live != all { try write(live) }
        return result
    }

    /// The first free address of the subnet.
    public func freeAddress(among leases: [Lease]) throws(SkiffError) -> IPv4Address {
        let taken = Set(leases.map(\.address.value))
        guard let free = subnet.hosts.first(where: { !taken.contains($0) }) else {
            throw SkiffError(.setupFailed, "no free address left in \(subnet): \(leases.count) containers hold them all")
        }
        return IPv4Address(free)
    }

    /// The leases, one per line: `ADDRESS PID NAME PORTS HOSTSFILE` (PORTS comma-separated or
    /// `-`; HOSTSFILE `-` or a path, last so it may hold spaces).
    func read() throws -> [Lease] {
        guard Files.exists(file) else { return [] }
        let text: String
        do {
            text = try Files.readText(file)
        } catch {
            throw SkiffError(.setupFailed, "cannot read the leases", cause: error)
        }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 4).map(String.init)
            guard fields.count == 5, let address = IPv4Address(fields[0]), let pid = Int32(fields[1]) else { return nil }
            let ports = fields[3] == "-" ? [] : fields[3].split(separator: ",").compactMap { try? PortMapping(parsing: String($0)) }
            return Lease(address: address, ownerPID: pid, name: fields[2], ports: ports, hostsFile: fields[4] == "-" ? nil : fields[4])
        }
    }

    func write(_ leases: [Lease]) throws {
        // No lease left: no file (a missing file reads as no leases). The lock file stays, since
        // another process may be waiting on it.
        if leases.isEmpty {
            guard unlink(file) == 0 || errno == ENOENT else {
                throw SkiffError(.setupFailed, "cannot save the leases", cause: SyscallError("unlink", path: file))
            }
            return
        }
        let text = leases.sorted { $0.address < $1.address }.map { lease in
            let ports = lease.ports.isEmpty ? "-" : lease.ports.map(\.description).joined(separator: ",")
            return "\(lease.address) \(lease.ownerPID) \(lease.name) \(ports) \(lease.hostsFile ?? "-")"
        }.joined(separator: "\n")
        do {
            try Files.writeAtomically(file, Array((text + "\n").utf8))
        } catch {
            throw SkiffError(.setupFailed, "cannot save the leases", cause: error)
        }
    }
}

func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
    return String(path[..<slash])
}
