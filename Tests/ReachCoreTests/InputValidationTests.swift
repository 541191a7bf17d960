import Foundation
import ReachCore
import Testing

/// Issue 9 §4: every input PostgreSQL would refuse, or that would crash or
/// stall intake, is a `ValidationError` naming where it is.
@Suite("input hardening: NUL, UTF-8, template bounds, numbers and dates that fit PostgreSQL")
struct InputValidationTests {
    let parser = TaskParser(channels: ["sms", "push", "email", "inapp"])

    func task(body: String = "Hi {{name}}", extra: String = "", id: String = "c1") -> String {
        #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":\#(JSONText.quote(body))}\#(extra)}"#
    }

    func error(_ bytes: [UInt8]) -> ValidationError? {
        do {
            _ = try parser.parse(bytes)
            return nil
        } catch let e as ValidationError {
            return e
        } catch {
            return ValidationError("?", "not a ValidationError: \(error)")
        }
    }

    func error(_ json: String) -> ValidationError? { error(Array(json.utf8)) }

    func eventError(_ bytes: [UInt8]) -> ValidationError? {
        do {
            _ = try TriggerEvent.parse(bytes)
            return nil
        } catch let e as ValidationError {
            return e
        } catch {
            return ValidationError("?", "not a ValidationError: \(error)")
        }
    }

    @Test("the valid baseline parses")
    func baseline() throws {
        #expect(error(task()) == nil)
        #expect(error(task(extra: #","data":{"n":1.5e3,"m":-0.25,"big":1e300}"#)) == nil)
        #expect(eventError(Array(#"{"event_id":"e","event":"x","user_id":"u","properties":{"a":1}}"#.utf8)) == nil)
    }

    @Test("U+0000 as an escape is refused wherever it is, with its path")
    func nulEscaped() {
        let cases: [(String, String)] = [
            (task(id: #"c\u0000"#), "campaign_id"),
            (task(extra: #","data":{"coupon":"a\u0000b"}"#), "data.coupon"),
            (task(extra: #","data":{"list":["ok","x\u0000"]}"#), "data.list[1]"),
            (task(extra: #","unknown":{"deep":"\u0000"}"#), "unknown.deep"),
            (task(extra: #","name":"\u0000""#), "name"),
            (task(extra: #","data":{"k\u0000":1}"#), "data.(member name)"),
        ]
        for (json, path) in cases {
            let e = error(json)
            #expect(e?.path == path, "\(json): \(String(describing: e))")
            #expect(e?.message.contains("U+0000") == true, "\(String(describing: e))")
        }
        // The template text too (it is inside a JSON string).
        let t = #"{"kind":"campaign","campaign_id":"c","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"x\u0000"}}"#
        #expect(error(t)?.path == "template.body")
    }

    @Test("a raw 0x00 byte is refused, inside or outside strings")
    func nulRaw() {
        var inString = Array(task(extra: #","data":{"coupon":"aXb"}"#).utf8)
        inString[inString.firstIndex(of: UInt8(ascii: "X"))!] = 0
        let e = error(inString)
        #expect(e?.path == "data.coupon" && e?.message.contains("U+0000") == true, "\(String(describing: e))")
        var outside = Array(task().utf8)
        outside.insert(0, at: outside.count - 1)
        #expect(error(outside)?.message.contains("NUL") == true)
        #expect(error([0])?.message.contains("NUL") == true)
    }

    @Test("NUL in an event's ids and properties, escaped and raw")
    func nulEvents() {
        for (field, path) in [("event_id", "event_id"), ("user_id", "user_id")] {
            let json = #"{"event_id":"e","event":"x","user_id":"u","properties":{}}"#.replacingOccurrences(of: #""\#(field)":"\#(field == "event_id" ? "e" : "u")""#, with: #""\#(field)":"a\u0000""#)
            #expect(eventError(Array(json.utf8))?.path == path, "\(json)")
            var raw = Array(json.replacingOccurrences(of: #"\u0000"#, with: "Z").utf8)
            raw[raw.firstIndex(of: UInt8(ascii: "Z"))!] = 0
            #expect(eventError(raw)?.path == path)
        }
        let props = #"{"event_id":"e","event":"x","user_id":"u","properties":{"p":{"q":"\u0000"}}}"#
        #expect(eventError(Array(props.utf8))?.path == "properties.p.q")
    }

    @Test("invalid UTF-8 is refused")
    func invalidUTF8() {
        var bytes = Array(task(extra: #","data":{"coupon":"aXb"}"#).utf8)
        bytes[bytes.firstIndex(of: UInt8(ascii: "X"))!] = 0xFF
        #expect(error(bytes)?.message.contains("UTF-8") == true)
        #expect(error([0xC3, 0x28])?.message.contains("not valid JSON") == true)
        #expect(eventError([0x7B, 0x22, 0xE2, 0x82, 0x22, 0x3A, 0x31, 0x7D]) != nil)
    }

    @Test("templates: 10 000 nested sections, 100 000 tags, oversize and set-delimiter tags are refused before swift-mustache sees them")
    func templateBounds() {
        let deep = String(repeating: "{{#a}}", count: 10_000) + String(repeating: "{{/a}}", count: 10_000)
        let refusal = error(task(body: deep))
        #expect(refusal?.path == "template.body" && refusal?.message.contains("bytes") == true, "120 KB: over the size bound first")
        let deepOpen = String(repeating: "{{#a}}", count: 10_000)  // 60 KB, within the size bound
        #expect(error(task(body: deepOpen))?.message.contains("deep") == true)
        let deepInverted = String(repeating: "{{^a}}", count: 33) + String(repeating: "{{/a}}", count: 33)
        #expect(error(task(body: deepInverted))?.path == "template.body")
        let atLimit = String(repeating: "{{#a}}", count: TemplateLimits.maxDepth) + String(repeating: "{{/a}}", count: TemplateLimits.maxDepth)
        #expect(error(task(body: atLimit)) == nil, "32 levels are fine")
        // Siblings do not add depth.
        #expect(error(task(body: String(repeating: "{{#a}}x{{/a}}", count: 500))) == nil)

        let many = String(repeating: "{{name}}", count: 100_000)
        let started = ContinuousClock.now
        #expect(error(task(body: many))?.path == "template.body")
        #expect(ContinuousClock.now - started < .seconds(2), "refused quickly")
        #expect(error(task(body: String(repeating: "{{name}} ", count: 2_000))) == nil)
        #expect(error(task(body: String(repeating: "{{name}}", count: 2_001)))?.message.contains("tags") == true)

        let big = String(repeating: "x", count: TemplateLimits.maxSourceBytes + 1)
        #expect(error(task(body: big))?.message.contains("bytes") == true)
        #expect(error(task(body: String(repeating: "x", count: TemplateLimits.maxSourceBytes))) == nil)

        #expect(error(task(body: "{{=<% %>=}}<%name%>"))?.message.contains("set-delimiter") == true)
        #expect(error(task(body: "{{ =| |=}}"))?.message.contains("set-delimiter") == true)
        // Triple mustaches and comments count as tags but do not nest.
        #expect(error(task(body: "{{{name}}} {{! note }} {{&name}}")) == nil)
        // Overrides and the title are checked too.
        let override = #"{"kind":"campaign","campaign_id":"c","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"x","channels":{"sms":{"title":"{{=<% %>=}}"}}}}"#
        #expect(error(override)?.path == "template.channels.sms.title")
    }

    @Test("trigger rules' templates have the same bounds")
    func ruleTemplates() {
        let deep = String(repeating: "{{#a}}", count: 10_000)
        #expect(throws: ValidationError.self) {
            try TriggerRule(id: "r", event: "e", channelsJSON: #"{"sms":1}"#, fallbackJSON: "[]",
                            templateJSON: #"{"body":\#(JSONText.quote(deep))}"#, delaySeconds: 0, quietHours: false, channels: ["sms"])
        }
    }

    @Test("number literals must fit PostgreSQL numeric, counting the exponent")
    func numbers() {
        let refused = ["1e-20000", "0." + String(repeating: "0", count: 20_000) + "1", "1e200000", "-1e-16384",
                       "0e-16384", "1" + String(repeating: "0", count: 131_072) + "e0", "1e131072", "0.5e-16383"]
        for n in refused {
            let e = error(task(extra: #","data":{"n":\#(n)}"#))
            #expect(e?.path == "data.n", "\(n.prefix(30)): \(String(describing: e).prefix(200))")
            #expect(PostgresNumeric.problem(n) != nil, "\(n.prefix(30))")
        }
        // In an unknown field, in an array.
        #expect(error(task(extra: #","junk":[1,2,1e-20000]"#))?.path == "junk[2]")
        let fits = ["1e-16383", "0." + String(repeating: "0", count: 16_382) + "1", "1e300", "123.456e2", "0", "-0.0", "1.5e-3",
                    "12345678901234567890", "0.000001e6"]
        for n in fits { #expect(PostgresNumeric.problem(n) == nil, "\(n.prefix(30))") }
        #expect(error(task(extra: #","data":{"n":1e-300}"#)) == nil)
        // Events' properties too.
        #expect(eventError(Array(#"{"event_id":"e","event":"x","user_id":"u","properties":{"a":1e-20000}}"#.utf8))?.path == "properties.a")
        // Non-storable mode (provider answers, recipient attrs) is unchanged.
        #expect((try? JSONParser.parse("1e-20000")) != nil)
    }

    @Test("RFC 3339 is strict and bounded to years 0001-9999 in UTC")
    func dates() {
        let refused = [
            "2020-01-01T00:60:00Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "2020-13-01T00:00:00Z",
            "2020-00-10T00:00:00Z", "2021-02-29T00:00:00Z", "2020-04-31T00:00:00Z", "2020-01-01T24:00:00Z",
            "2020-01-01T00:00:60Z", "2020-01-01T00:00:00+24:00", "2020-01-01T00:00:00+05:60", "2020-01-01T00:00:00",
            "2020-01-01 00:00:00Z", "20-01-01T00:00:00Z", "2020-1-01T00:00:00Z", "2020-01-01T00:00:00.Z",
            "2020-01-01T00:00:00Z ", "9999-12-31T23:59:59-00:01", "0000-12-31T23:59:59Z", "+2020-01-01T00:00:00Z",
            "2020-01-01T00:00:00.1234567890Z", "",
        ]
        for text in refused { #expect(RFC3339.parse(text) == nil, "\(text)") }
        let accepted: [(String, TimeInterval)] = [
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-23T17:00:00+08:00", 1_795_424_400),
            ("2026-11-23T09:00:00Z", 1_795_424_400),
            ("2020-02-29T12:00:00Z", 1_582_977_600),
            ("2000-02-29T00:00:00z", 951_782_400),
            ("0001-01-01T00:00:00Z", -62_135_596_800),
            ("0001-01-01T00:00:00-01:00", -62_135_593_200),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799.999),
            ("9999-12-31T23:59:59+23:59", 253_402_214_459),
            ("2026-11-23t09:00:00.250Z", 1_795_424_400.25),
        ]
        for (text, seconds) in accepted {
            let d = RFC3339.parse(text)
            #expect(d != nil, "\(text)")
            if let d { #expect(abs(d.timeIntervalSince1970 - seconds) < 0.0005, "\(text): \(d.timeIntervalSince1970)") }
        }
        // Through the parsers: schedule.at, expires_at, occurred_at.
        #expect(error(task(extra: #","schedule":{"at":"0001-01-01T00:00:00+14:00"}"#))?.path == "schedule.at")
        #expect(error(task(extra: #","schedule":{"at":"2020-01-01T00:60:00Z"}"#))?.path == "schedule.at")
        #expect(error(task(extra: #","expires_at":"10000-01-01T00:00:00Z""#))?.path == "expires_at")
        #expect(error(task(extra: #","schedule":{"at":"2030-01-01T00:00:00Z"},"expires_at":"9999-12-31T23:59:59Z""#)) == nil)
        #expect(eventError(Array(#"{"event_id":"e","event":"x","user_id":"u","occurred_at":"2020-01-01T00:60:00Z"}"#.utf8))?.path == "occurred_at")
    }

    @Test("bounded JSON strings: cut at a character, marked, never over the limit")
    func boundedQuote() {
        let (whole, cut) = JSONText.quote("short", maxBytes: 100)
        #expect(whole == "\"short\"" && !cut)
        for s in [String(repeating: "é\u{1}\"x", count: 10_000), String(repeating: "a", count: 100_000), String(repeating: "😀", count: 5_000)] {
            let (text, truncated) = JSONText.quote(s, maxBytes: 1_000)
            #expect(truncated && text.utf8.count <= 1_000)
            #expect(text.contains("truncated"))
            let back = try? JSONParser.parse(text)
            #expect(back?.string?.hasSuffix(JSONText.truncationMarker(total: s.utf8.count)) == true)
        }
        #expect(JSONText.storable("a\u{0}b") == "a\u{FFFD}b")
    }
}
