import SkiffKernel

/// A hostname the kernel and every resolver accept: RFC 1123 labels of letters, digits and '-',
/// 1 to 63 characters each, not starting or ending with '-', 64 characters in all (HOST_NAME_MAX).
public struct Hostname: Sendable, Equatable, CustomStringConvertible {
    public let value: String

    public init(validating value: String) throws(SkiffError) {
        let labels = value.split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            !value.isEmpty && value.utf8.count <= 64
            && labels.allSatisfy { label in
                (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                    && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            }
        guard valid else {
            throw SkiffError(
                .invalidInput,
                "invalid hostname \"\(value)\": use letters, digits and '-' (not at either end), 1-63 characters per dot-separated label, 64 in all"
            )
        }
        self.value = value
    }

    public var description: String { value }
}

/// The UTS namespace (uts_namespaces(7)): its own hostname and NIS domain name.
public enum UTSNamespace {
    /// sethostname(2) inside a new UTS namespace changes only the container's name.
    public static func setHostname(_ hostname: Hostname, kernel: Kernel) throws(SyscallError) {
        try kernel.run(.sethostname(hostname.value), why: "name the container; the host keeps its own name")
    }
}
