import Foundation
import ReachCore
import Testing

@Suite struct JSONParserTests {
    /// Foundation's reading of the same text, for comparison.
    func foundation(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    @Test func agreesWithFoundationOnValidDocuments() throws {
        let documents = [
            #"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-0.5e3,"g":"","h":[]}"#,
            #"  [ 1 , 2.25 , -3 , 1E2 , 0 , 12345678901 ]  "#,
            #""plain""#,
            #"{"esc":"q\" b\\ s\/ \b\f\n\r\t \u00e9 \u4e2d \ud83d\ude00"}"#,
            #"{"utf8":"héllo 中文 😀"}"#,
            "null", "true", "0", "-0", "1.5e-7",
        ]
        for text in documents {
            let parsed = try JSONParser.parse(text)
            #expect(parsed == foundation(text), "\(text)")
        }
    }

    @Test func duplicateNamesKeepTheLastValue() throws {
        #expect(try JSONParser.parse(#"{"dup":1,"dup":2}"#) == .object(["dup": .number(2)]))
    }

    @Test func roundTripsRandomValues() throws {
        var rng = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &rng))
            case 2: return .number(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 8)
            case 3:
                let alphabet = Array("ab\"\\\n\t\u{01}é中😀 /")
                return .string(String((0..<Int.random(in: 0...12, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            case 4: return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in random(depth + 1) })
            default:
                var o: [String: JSONValue] = [:]
                for i in 0..<Int.random(in: 0...4, using: &rng) { o["k\(i)\u{7}"] = random(depth + 1) }
                return .object(o)
            }
        }
        for _ in 0..<2_000 {
            let value = random(0)
            #expect(try JSONParser.parse(value.jsonText) == value)
        }
    }

    /// Stricter than Foundation, which takes trailing commas (`[1,]`).
    @Test func rejectsInvalidDocumentsWithTheirOffset() {
        let invalid: [(String, Int)] = [
            ("", 0), ("{", 1), (#"{"a":1,}"#, 7), ("[1,]", 3), ("[1 2]", 3), ("01", 1), ("1.", 2), ("-", 1), ("1e", 2),
            (#""abc"#, 4), ("\"a\u{01}b\"", 2), (#""\x""#, 3), (#""\ud800""#, 7), (#""\udc00""#, 7), ("tru", 0), ("nul", 0),
            ("{} {}", 3), ("'a'", 0), ("1e999", 0), (#"{"a" 1}"#, 5), ("[", 1),
        ]
        for (text, offset) in invalid {
            #expect(throws: JSONParser.Failure.self, "\(text)") { try JSONParser.parse(text) }
            do {
                _ = try JSONParser.parse(text)
            } catch {
                #expect(error.offset == offset, "\(text): \(error)")
            }
        }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xC3, 0x22]) }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect((try? JSONParser.parse(fine)) != nil)
    }
}
