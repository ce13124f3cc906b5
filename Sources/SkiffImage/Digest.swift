import Crypto
import SkiffKernel

/// A content address, `sha256:` and 64 lowercase hex digits (OCI image spec, descriptor.md).
/// Only sha256 is accepted: it is what every registry and Docker write, and a digest whose
/// algorithm we cannot verify would be a name, not an address.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// The 64 hex digits after `sha256:`.
    public let hex: String

    /// Parses `sha256:HEX`; anything else is an error naming the text.
    public init(_ text: String) throws(SkiffError) {
        guard text.hasPrefix("sha256:") else {
            throw SkiffError(.invalidInput, "digest \"\(text)\": only sha256 digests (sha256:<64 hex digits>) are supported")
        }
        let hex = String(text.dropFirst(7))
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw SkiffError(.invalidInput, "digest \"\(text)\": expected sha256: and 64 lowercase hex digits")
        }
        self.hex = hex
    }

    /// The digest of `bytes`.
    public init(of bytes: some Sequence<UInt8>) {
        var hasher = SHA256()
        hasher.update(data: Array(bytes))
        self.init(finalizing: hasher)
    }

    /// The digest a running hash has reached.
    public init(finalizing hasher: SHA256) {
        hex = Files.hexadecimal(hasher.finalize())
    }

    public var description: String { "sha256:" + hex }

    /// The first 12 hex digits, as `docker images` shows an image id.
    public var short: String { String(hex.prefix(12)) }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.hex < rhs.hex }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(text)
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
