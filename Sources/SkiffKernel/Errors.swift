@preconcurrency import Glibc

/// A kernel call that failed: the operation, the path it was about, and errno.
/// Printed as `pivot_root /x: Device or resource busy`.
public struct SyscallError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String?
    public let errno: Int32

    public init(_ operation: String, path: String? = nil, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        let subject = path.map { "\(operation) \($0)" } ?? operation
        return "\(subject): \(String(cString: strerror(errno)))"
    }
}

/// An error above the kernel boundary, with a message that says what the user can do.
/// `code` decides the exit status, following `docker run`: 125 when Skiff itself failed,
/// 126 when the command cannot be invoked, 127 when it cannot be found.
public struct SkiffError: Error, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// A bad option or argument, found before anything was created.
        case invalidInput
        /// Setting up the container failed.
        case setupFailed
        case commandNotFound
        case commandNotExecutable
    }

    public let code: Code
    public let message: String
    public let cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var exitStatus: Int32 {
        switch code {
        case .invalidInput, .setupFailed: 125
        case .commandNotExecutable: 126
        case .commandNotFound: 127
        }
    }

    public var description: String {
        guard let cause else { return message }
        return "\(message): \(cause)"
    }
}
