import Foundation
import Testing

/// Runs the ```console blocks of a lesson README and compares what they print with the text,
/// so that the lessons stay true.
///
/// In a block, a line starting with `$ ` is a command; the lines after it, up to the next command,
/// are its expected output (stdout and stderr merged). `[...]` inside a line matches any text and a
/// line of just `...` matches any number of lines. Each block runs in one shell, from the
/// repository root, with the build directory first on PATH; every command must exit 0.
enum ReadmeCheck {
    struct Step {
        var command: String
        var expected: [String] = []
    }

    static func blocks(in markdown: String) -> [[Step]] {
        var blocks: [[Step]] = []
        var current: [Step]?
        for line in markdown.components(separatedBy: "\n") {
            if current == nil {
                if line.trimmingCharacters(in: .whitespaces) == "```console" { current = [] }
                continue
            }
            if line.hasPrefix("```") {
                blocks.append(current!)
                current = nil
            } else if line.hasPrefix("$ ") {
                current!.append(Step(command: String(line.dropFirst(2))))
            } else if !current!.isEmpty {
                current![current!.count - 1].expected.append(line)
            }
        }
        return blocks
    }

    /// Checks every block of lessons/`folder`/README.md.
    static func verify(lesson folder: String) throws {
        let readme = Host.repository.appendingPathComponent("lessons/\(folder)/README.md")
        let blocks = blocks(in: try String(contentsOf: readme, encoding: .utf8))
        #expect(!blocks.isEmpty, "lessons/\(folder)/README.md shows commands to run")
        for block in blocks { try run(block, readme: "lessons/\(folder)/README.md") }
    }

    static func run(_ block: [Step], readme: String) throws {
        let marker = "@@skiff-readme-step"
        var script = "cd '\(Host.repository.path)' || exit 99\nexport PATH='\(Host.buildDirectory.path)':\"$PATH\"\n"
        for (index, step) in block.enumerated() {
            script += "{ \(step.command)\n} </dev/null 2>&1\necho \"\(marker) \(index) $?\"\n"
        }
        let outcome = try Started("/bin/sh", ["-c", script]).finish(seconds: 120)
        var outputs = Array(repeating: [String](), count: block.count)
        var statuses = Array(repeating: Int32(-1), count: block.count)
        var pending: [String] = []
        for line in outcome.stdout.components(separatedBy: "\n") {
            if let range = line.range(of: marker + " ") {
                let fields = line[range.upperBound...].split(separator: " ")
                let prefix = String(line[..<range.lowerBound])
                if !prefix.isEmpty { pending.append(prefix) }
                if fields.count == 2, let index = Int(fields[0]), let status = Int32(fields[1]) {
                    outputs[index] = pending
                    statuses[index] = status
                }
                pending = []
            } else {
                pending.append(line)
            }
        }
        for (index, step) in block.enumerated() {
            #expect(statuses[index] == 0, "\(readme): `\(step.command)` exits 0\n\(outputs[index].joined(separator: "\n"))")
            let expected = step.expected.reversed().drop { $0.trimmingCharacters(in: .whitespaces).isEmpty }.reversed()
            #expect(
                matches(Array(expected), outputs[index]),
                "\(readme): `\(step.command)` prints what the text shows\nexpected:\n\(expected.joined(separator: "\n"))\nactual:\n\(outputs[index].joined(separator: "\n"))"
            )
        }
    }

    /// Line-by-line match with `...` lines and `[...]` wildcards.
    static func matches(_ expected: [String], _ actual: [String]) -> Bool {
        func trimmed(_ line: String) -> String {
            String(line.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
        }
        let expected = expected.map(trimmed)
        let actual = actual.map(trimmed)
        func match(_ e: Int, _ a: Int) -> Bool {
            if e == expected.count { return a == actual.count }
            if expected[e] == "..." { return (a...actual.count).contains { match(e + 1, $0) } }
            return a < actual.count && lineMatches(expected[e], actual[a]) && match(e + 1, a + 1)
        }
        return match(0, 0)
    }

    static func lineMatches(_ pattern: String, _ line: String) -> Bool {
        let pieces = pattern.components(separatedBy: "[...]")
        guard pieces.count > 1 else { return pattern == line }
        var rest = Substring(line)
        guard rest.hasPrefix(pieces[0]) else { return false }
        rest = rest.dropFirst(pieces[0].count)
        for piece in pieces.dropFirst().dropLast() where !piece.isEmpty {
            guard let found = rest.range(of: piece) else { return false }
            rest = rest[found.upperBound...]
        }
        return rest.hasSuffix(pieces.last!)
    }
}

@Suite("the README checker itself")
struct ReadmeCheckTests {
    @Test("blocks, commands and their expected lines are read from console fences only")
    func parsing() {
        let markdown = "text\n```sh\n$ not run\n```\n```console\n$ echo a\na\n$ true\n```\n"
        let blocks = ReadmeCheck.blocks(in: markdown)
        #expect(blocks.count == 1)
        #expect(blocks[0].map(\.command) == ["echo a", "true"])
        #expect(blocks[0][0].expected == ["a"])
        #expect(blocks[0][1].expected == [])
    }

    @Test("wildcards match what they should and nothing else")
    func wildcards() {
        #expect(ReadmeCheck.matches(["a [...] c"], ["a b c"]))
        #expect(!ReadmeCheck.matches(["a [...] c"], ["a b d"]))
        #expect(ReadmeCheck.matches(["x", "...", "z"], ["x", "1", "2", "z"]))
        #expect(ReadmeCheck.matches(["x", "...", "z"], ["x", "z"]))
        #expect(!ReadmeCheck.matches(["x"], ["x", "extra"]))
        #expect(!ReadmeCheck.matches(["x", "y"], ["x"]))
        #expect(ReadmeCheck.matches(["[...]"], ["anything"]))
    }
}
