import CCap
import SkiffKernel

/// A set of Linux capabilities (capabilities(7)) as a bit mask, bit N for capability N.
public struct CapabilitySet: Equatable, Sendable, CustomStringConvertible {
    public var bits: UInt64

    public init(bits: UInt64) { self.bits = bits }

    /// The 14 capabilities Docker keeps for a container's root: enough to run as root inside
    /// (own files, switch users, bind low ports, chroot, kill its processes), nothing that
    /// reaches the host (no sys_admin, sys_module, sys_time, net_admin, sys_ptrace...).
    public static let containerDefault = try! CapabilitySet(names: [
        "chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid", "setfcap", "setpcap",
        "net_bind_service", "sys_chroot", "kill", "audit_write",
    ])

    /// Every capability this kernel knows.
    public static var all: CapabilitySet {
        let count = UInt64(cap_max_bits())
        return CapabilitySet(bits: count >= 64 ? UInt64.max : (1 << count) - 1)
    }

    /// From names with or without `CAP_`, any case (libcap's cap_from_name(3)).
    public init(names: [String]) throws(SkiffError) {
        bits = 0
        for name in names {
            bits |= 1 << UInt64(try Self.number(of: name))
        }
    }

    static func number(of name: String) throws(SkiffError) -> cap_value_t {
        let bare = name.lowercased().hasPrefix("cap_") ? String(name.dropFirst(4)) : name
        var value: cap_value_t = 0
        guard !bare.isEmpty, cap_from_name("cap_" + bare.lowercased(), &value) == 0, value < cap_max_bits() else {
            throw SkiffError(
                .invalidInput, "unknown capability \"\(name)\": use names such as NET_ADMIN or CAP_NET_ADMIN (see capabilities(7)), or ALL")
        }
        return value
    }

    public func contains(_ capability: Int) -> Bool { bits & (1 << UInt64(capability)) != 0 }

    /// Lowercase names in bit order: `chown,dac_override,...`.
    public var names: [String] {
        (0..<64).filter { contains($0) }.map { bit in
            guard let text = cap_to_name(cap_value_t(bit)) else { return "cap_\(bit)" }
            defer { cap_free(text) }
            let name = String(cString: text)
            return name.hasPrefix("cap_") ? String(name.dropFirst(4)) : name
        }
    }

    public var description: String { names.isEmpty ? "-" : names.joined(separator: ",") }

    /// The default set changed by `--cap-add` and `--cap-drop` (names, or ALL), drops first, as
    /// Docker applies them.
    public static func adjusted(adding: [String], dropping: [String]) throws(SkiffError) -> CapabilitySet {
        var set = containerDefault
        if dropping.contains(where: { $0.uppercased() == "ALL" }) {
            set.bits = 0
        } else {
            set.bits &= ~(try CapabilitySet(names: dropping)).bits
        }
        if adding.contains(where: { $0.uppercased() == "ALL" }) {
            set = .all
        } else {
            set.bits |= (try CapabilitySet(names: adding)).bits
        }
        return set
    }
}

/// Applies a capability set to the calling process, with libcap (cap_set_proc(3) and friends).
public enum Capabilities {
    /// Shrinks the bounding set to `keep`: no later execve can gain a capability outside it,
    /// not even through a setuid-root or file-capability binary. Before the user switch,
    /// which would lose CAP_SETPCAP needed to drop.
    public static func limitBoundingSet(to keep: CapabilitySet, kernel: Kernel) throws(SkiffError) {
        let dropped = CapabilitySet(bits: CapabilitySet.all.bits & ~keep.bits)
        kernel.narrator.call(
            "prctl(PR_CAPBSET_DROP, ...) x\(dropped.names.count)", why: "the bounding set keeps only \(keep.names.count) capabilities")
        for bit in (0..<64).filter({ dropped.contains($0) }) where cap_drop_bound(cap_value_t(bit)) != 0 {
            throw SkiffError(
                .setupFailed, "cannot drop \(CapabilitySet(bits: 1 << UInt64(bit))) from the bounding set",
                cause: SyscallError("prctl PR_CAPBSET_DROP"))
        }
    }

    /// Sets the effective and permitted sets to `keep` and clears the inheritable and ambient
    /// sets. For root inside: a non-root user's sets are emptied by the kernel at setresuid(2).
    /// The inheritable set stays empty, as in Docker since CVE-2022-24769: a program with
    /// inheritable file capabilities would otherwise gain them even as a non-root user.
    public static func set(_ keep: CapabilitySet, kernel: Kernel) throws(SkiffError) {
        try set(effective: keep, permitted: keep, inheritable: CapabilitySet(bits: 0), ambient: CapabilitySet(bits: 0), kernel: kernel)
    }

    /// Sets each set as given (an OCI spec lists them one by one). Ambient capabilities, the
    /// ones a non-root program keeps across execve, must also be permitted and inheritable.
    public static func set(
        effective: CapabilitySet, permitted: CapabilitySet, inheritable: CapabilitySet, ambient: CapabilitySet, kernel: Kernel
    ) throws(SkiffError) {
        kernel.narrator.call(
            "cap_set_proc(e=\(effective) p=\(permitted) i=\(inheritable)), ambient \(ambient)",
            why: "the capabilities the process keeps; the rest are gone for good")
        guard let capabilities = cap_init() else { throw SkiffError(.setupFailed, "libcap: cap_init failed") }
        defer { cap_free(UnsafeMutableRawPointer(capabilities)) }
        for (set, flag) in [(effective, CAP_EFFECTIVE), (permitted, CAP_PERMITTED), (inheritable, CAP_INHERITABLE)] {
            var values = (0..<64).filter { set.contains($0) }.map { cap_value_t($0) }
            if !values.isEmpty { cap_set_flag(capabilities, flag, Int32(values.count), &values, CAP_SET) }
        }
        guard cap_set_proc(capabilities) == 0 else {
            throw SkiffError(.setupFailed, "cannot set the capabilities e=\(effective) p=\(permitted)", cause: SyscallError("capset"))
        }
        guard cap_reset_ambient() == 0 else {
            throw SkiffError(.setupFailed, "cannot clear the ambient capabilities", cause: SyscallError("prctl PR_CAP_AMBIENT"))
        }
        for bit in (0..<64).filter({ ambient.contains($0) }) where cap_set_ambient(cap_value_t(bit), CAP_SET) != 0 {
            throw SkiffError(
                .setupFailed, "cannot raise the ambient capability \(CapabilitySet(bits: 1 << UInt64(bit)))",
                cause: SyscallError("prctl PR_CAP_AMBIENT"))
        }
    }
}
