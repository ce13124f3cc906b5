import Foundation
import SkiffKernel

/// Decoding the JSON a user hands in (a seccomp profile, an OCI config.json): a malformed
/// document is an error that names the field, `syscalls[0].names has the wrong type`.
public enum JSONInput {
    /// `label` starts the field errors (`config.json`); `invalid` is the whole message for text
    /// that is not JSON at all.
    public static func decode<Value: Decodable>(_ type: Value.Type, from data: Data, label: String, invalid: String) throws(SkiffError)
        -> Value
    {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw SkiffError(.invalidInput, "\(label): \(fieldPath(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw SkiffError(.invalidInput, "\(label): \(fieldPath(context.codingPath)) has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw SkiffError(.invalidInput, invalid + (context.codingPath.isEmpty ? "" : " at \(fieldPath(context.codingPath))"))
        } catch {
            throw SkiffError(.invalidInput, "\(label): \(error)")
        }
    }

    /// `syscalls[0].names`, from a decoder's coding path.
    static func fieldPath(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
}
