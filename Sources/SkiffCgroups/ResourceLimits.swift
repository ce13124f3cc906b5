@preconcurrency import Glibc
import SkiffKernel

/// The limits a container gets, checked before anything is created. Same meanings and ranges as
/// `docker run`: --memory, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit, --blkio-weight.
public struct ResourceLimits: Equatable, Sendable {
    /// Memory limit in bytes; swap is not allowed on top of it.
    public var memoryBytes: UInt64?
    /// CPU time as a number of CPUs (0.5 = half of one CPU), enforced by the CFS bandwidth quota.
    public var cpus: Double?
    /// Relative CPU weight under contention, v1 units (2...262144, default 1024).
    public var cpuShares: UInt64?
    /// The CPUs the container may run on, as the kernel's list format: `0-1,3`.
    public var cpuset: String?
    /// The most tasks (processes and threads) the container may have at once.
    public var pids: UInt64?
    /// Relative block I/O weight (10...1000).
    public var blkioWeight: UInt64?
    /// The devices the container may use, as devices.allow lines (`c 1:3 rwm`); all others are
    /// denied. nil leaves device access alone.
    public var deviceRules: [String]?

    /// The character devices a container gets in /dev, and new pseudo-terminals: null, zero,
    /// full, random, urandom, tty, console, ptmx and /dev/pts/* (major 136), as Docker allows.
    public static let containerDevices = [
        "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
    ]

    public init() {}

    /// The CFS period: quota is measured per 100 ms, the kernel's and Docker's default.
    public static let cpuPeriodMicroseconds: UInt64 = 100_000

    /// The CPU quota per period, in microseconds.
    public var cpuQuotaMicroseconds: UInt64? {
        cpus.map { UInt64(($0 * Double(Self.cpuPeriodMicroseconds)).rounded()) }
    }

    /// `64m`, `1g`, `512k`, `1048576`: a number with an optional unit b, k, m or g (powers of 1024).
    public static func parseMemory(_ text: String) throws(SkiffError) -> UInt64 {
        let lowered = text.lowercased()
        let units: [(String, UInt64)] = [
            ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("b", 1),
        ]
        var number = Substring(lowered)
        var multiplier: UInt64 = 1
        if let (suffix, value) = units.first(where: { lowered.hasSuffix($0.0) }) {
            number = lowered.dropLast(suffix.count)
            multiplier = value
        }
        guard let value = UInt64(number), value > 0, value <= UInt64.max / multiplier else {
            throw SkiffError(
                .invalidInput, "invalid --memory \"\(text)\": use a positive number with an optional unit b, k, m or g, e.g. 64m")
        }
        let bytes = value * multiplier
        // Below a few MiB the command is killed before it gets to run; Docker sets the same floor.
        guard bytes >= 6 << 20 else {
            throw SkiffError(.invalidInput, "--memory \(text) is too small: the minimum is 6m")
        }
        return bytes
    }

    /// `0.5`, `2`: more than 0 and at most the number of online CPUs.
    public static func parseCPUs(_ text: String, onlineCPUs: Int = onlineCPUCount()) throws(SkiffError) -> Double {
        guard let value = Double(text), value.isFinite, value >= 0.01, value <= Double(onlineCPUs) else {
            throw SkiffError(.invalidInput, "invalid --cpus \"\(text)\": use a number from 0.01 to \(onlineCPUs) (the CPUs online)")
        }
        return value
    }

    public static func parseCPUShares(_ text: String) throws(SkiffError) -> UInt64 {
        guard let value = UInt64(text), (2...262_144).contains(value) else {
            throw SkiffError(.invalidInput, "invalid --cpu-shares \"\(text)\": use a number from 2 to 262144 (1024 is the default weight)")
        }
        return value
    }

    /// The kernel's list format (`0-1,3`), every CPU online.
    public static func parseCPUSet(_ text: String, onlineCPUs: Int = onlineCPUCount()) throws(SkiffError) -> String {
        let invalid = SkiffError(
            .invalidInput, "invalid --cpuset \"\(text)\": use CPU numbers and ranges such as 0-1,3, from 0 to \(onlineCPUs - 1)")
        guard !text.isEmpty else { throw invalid }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            guard (1...2).contains(bounds.count), bounds.allSatisfy({ $0 != nil && $0! >= 0 && $0! < onlineCPUs }) else { throw invalid }
            if bounds.count == 2, bounds[0]! > bounds[1]! { throw invalid }
        }
        return text
    }

    public static func parsePids(_ text: String) throws(SkiffError) -> UInt64 {
        guard let value = UInt64(text), value >= 1, value <= 4_194_304 else {
            throw SkiffError(.invalidInput, "invalid --pids \"\(text)\": use a number of processes from 1 to 4194304")
        }
        return value
    }

    public static func parseBlkioWeight(_ text: String) throws(SkiffError) -> UInt64 {
        guard let value = UInt64(text), (10...1000).contains(value) else {
            throw SkiffError(.invalidInput, "invalid --blkio-weight \"\(text)\": use a number from 10 to 1000")
        }
        return value
    }

    /// v1 cpu.shares (2...262144) to v2 cpu.weight (1...10000). The ranges are 2^1...2^18 and
    /// 10^0...10^4, and the defaults 1024 = 2^10 and 100 = 10^2 must meet, so the conversion is a
    /// quadratic in log space through those three points: with l = log2(shares),
    /// log10(weight) = (l² + 125·l) / 612 − 7/34. A straight line would turn the default 1024
    /// into 39 and quietly deprioritise every container (the formula runc and crun moved to).
    public static func cpuWeight(fromShares shares: UInt64) -> UInt64 {
        let l = log2(Double(min(max(shares, 2), 262_144)))
        let exponent = (l * l + 125 * l) / 612 - 7.0 / 34.0
        // Rounded to 9 digits first, so 10^2.0000000001 from floating point stays 100.
        let weight = ceil((pow(10, exponent) * 1e9).rounded() / 1e9)
        return UInt64(min(max(weight, 1), 10_000))
    }

    public static func onlineCPUCount() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// `64 MiB`, `1.5 GiB`: sizes for people.
public func humanBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 || value == value.rounded() { return "\(Int(value)) \(units[unit])" }
    return "\((value * 10).rounded() / 10) \(units[unit])"
}
