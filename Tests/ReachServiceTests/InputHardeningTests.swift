import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
@testable import ReachService
import Testing
import TestSupport

/// One bad input, and whether the dead letter must keep its exact bytes in `raw`.
struct BadInput {
    var label: String
    var bytes: [UInt8]
    var needsRaw = false
}

/// Everything one hardened-intake test needs: a daemon on 1-partition topics
/// (so offsets are publish order), the database, and a producer.
struct IntakeHarness: Sendable {
    let kafka: EmbeddedKafka
    let pg: PostgresClient
    let configuration: ReachConfiguration
    let producer: KafkaProducer
    let daemon: Task<Void, any Error>
    let providerTask: Task<Void, any Error>

    static func start(dlqMaxBytes: Int = 900_000, rules: String? = nil) async throws -> IntakeHarness {
        let kafka = try EmbeddedKafka(topics: ["reach.tasks": 1, "reach.events": 1, "reach.dlq": 1])
        let (providerPort, providerTask) = try await startProvider(DevProvider())
        let url = try await seededDatabase(count: 10)
        let pg = PostgresClient(url: url, poolSize: 2)
        if let rules { try await pg.query(rules) }
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.kafka.dlqMaxBytes = dlqMaxBytes
        let (_, daemon) = try await startDaemon(configuration)
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: kafka.bootstrapServers, properties: ["linger.ms": "0"]))
        return IntakeHarness(kafka: kafka, pg: pg, configuration: configuration, producer: producer, daemon: daemon, providerTask: providerTask)
    }

    func stop() {
        daemon.cancel()
        providerTask.cancel()
    }

    func send(_ topic: String, _ bytes: [UInt8], key: String = "k") async throws {
        _ = try await producer.send(topic: topic, key: Array(key.utf8), value: bytes)
    }

    /// Publishes in order, waiting for intake to catch up whenever 2 MB are
    /// outstanding: the embedded (mock) broker keeps only about 5 MB per
    /// partition and drops older records beyond that.
    func sendPaced(_ topic: String, group: String, _ messages: [[UInt8]], key: String = "k") async throws {
        var outstanding = 0
        for (i, message) in messages.enumerated() {
            try await send(topic, message, key: key)
            outstanding += message.count
            if outstanding > 2_000_000 {
                _ = try await eventually(timeout: .seconds(120), every: .milliseconds(50)) {
                    (try await committed(topic, group: group) ?? 0) >= Int64(i + 1)
                }
                outstanding = 0
            }
        }
    }

    func committed(_ topic: String, group: String) async throws -> Int64? {
        let observer = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers, groupID: group, topics: []))
        defer { Task { await observer.close() } }
        return try await observer.committedOffsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)] ?? nil
    }

    /// Input dead letters of `topic`: offset → (reason, error, raw as hex or nil).
    func deadLetters(_ topic: String) async throws -> [Int: (reason: String, error: String, raw: String?)] {
        var out: [Int: (reason: String, error: String, raw: String?)] = [:]
        for row in try await pg.query("""
            SELECT kafka_offset, reason, error, encode(raw, 'hex'), payload IS NOT NULL
            FROM reach.dead_letters WHERE source = 'input' AND topic = $1
            """, [topic]) {
            out[row.int(0) ?? -1] = (row[1] ?? "", row[2] ?? "", row[3])
        }
        return out
    }

    /// Every message still on reach.dlq and how many were ever published on it
    /// (the mock broker may have dropped the oldest: see `sendPaced`).
    func dlqMessages() async throws -> (published: Int, retained: [KafkaMessage]) {
        let dlq = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers, groupID: TestEnvironment.unique("dlq"),
                                                          topics: ["reach.dlq"]))
        let (low, high) = try await dlq.watermarks(TopicPartition("reach.dlq", 0))
        var seen: [KafkaMessage] = []
        if high > low {
            for try await message in dlq.messages {
                seen.append(message)
                if message.offset >= high - 1 { break }
            }
        }
        await dlq.close()
        return (Int(high), seen)
    }
}

func hex(_ bytes: [UInt8]) -> String { String(DeadLetterStore.byteaHex(bytes).dropFirst(2)) }

/// `text` with the first `marker` character replaced by `byte`.
func withByte(_ text: String, _ marker: Character = "§", _ byte: UInt8) -> [UInt8] {
    var bytes = Array(text.utf8)
    let m = Array(String(marker).utf8)
    for i in 0...(bytes.count - m.count) where Array(bytes[i..<(i + m.count)]) == m {
        bytes.replaceSubrange(i..<(i + m.count), with: [byte])
        return bytes
    }
    return bytes
}

func campaignJSON(_ id: String, body: String = "hi {{name}}", extra: String = "") -> String {
    #"{"kind":"campaign","campaign_id":\#(JSONText.quote(id)),"segment":{"user_ids":["u00001"]},"channels":{"inapp":1},"template":{"body":\#(JSONText.quote(body))}\#(extra)}"#
}

@Suite("hardened intake: no input stalls a partition or kills the process (issue 9 §4)", .serialized)
struct InputHardeningTests {
    static var badTasks: [BadInput] {
        let megabyte = 990_000
        return [
            BadInput(label: "NUL escape in campaign_id", bytes: Array(campaignJSON(#"x"#).replacingOccurrences(of: #""x""#, with: #""x\u0000""#).utf8)),
            BadInput(label: "NUL escape in data", bytes: Array(campaignJSON("c", extra: #","data":{"coupon":"a\u0000"}"#).utf8)),
            BadInput(label: "NUL escape in the template", bytes: Array(campaignJSON("c").replacingOccurrences(of: "hi {{name}}", with: #"hi \u0000"#).utf8)),
            BadInput(label: "NUL escape in an unknown field", bytes: Array(campaignJSON("c", extra: #","zzz":["\u0000"]"#).utf8)),
            BadInput(label: "raw NUL in data", bytes: withByte(campaignJSON("c", extra: #","data":{"coupon":"a§"}"#), "§", 0), needsRaw: true),
            BadInput(label: "raw NUL between fields", bytes: withByte(campaignJSON("c", extra: #",§"x":1"#), "§", 0), needsRaw: true),
            BadInput(label: "raw NUL in an id", bytes: withByte(campaignJSON("c§"), "§", 0), needsRaw: true),
            BadInput(label: "invalid UTF-8", bytes: withByte(campaignJSON("c", extra: #","name":"§""#), "§", 0xFF), needsRaw: true),
            BadInput(label: "10 000 nested sections", bytes: Array(campaignJSON("c", body: String(repeating: "{{#a}}", count: 10_000) + String(repeating: "{{/a}}", count: 10_000)).utf8)),
            BadInput(label: "100 000 tags", bytes: Array(campaignJSON("c", body: String(repeating: "{{name}}", count: 100_000)).utf8)),
            BadInput(label: "1 MB of not-JSON", bytes: Array(("{" + String(repeating: "x", count: megabyte)).utf8)),
            BadInput(label: "1 MB campaign_id", bytes: Array(campaignJSON(String(repeating: "c", count: megabyte)).utf8)),
            BadInput(label: "1 MB kind quoted in the error", bytes: Array(#"{"kind":"\#(String(repeating: "k", count: megabyte))","campaign_id":"c"}"#.utf8)),
            BadInput(label: "1 MB of control characters", bytes: Array(("[\"" + String(repeating: "\\u0001", count: megabyte / 6) + "\"").utf8)),
            BadInput(label: "1e-20000 in data", bytes: Array(campaignJSON("c", extra: #","data":{"n":1e-20000}"#).utf8)),
            BadInput(label: "0.(20 000 zeros)1 in an unknown field", bytes: Array(campaignJSON("c", extra: #","zzz":0.\#(String(repeating: "0", count: 20_000))1"#).utf8)),
            BadInput(label: "1e200000 in data", bytes: Array(campaignJSON("c", extra: #","data":{"n":1e200000}"#).utf8)),
            BadInput(label: "schedule.at in year 0 UTC", bytes: Array(campaignJSON("c", extra: #","schedule":{"at":"0001-01-01T00:00:00+14:00"}"#).utf8)),
            BadInput(label: "expires_at in year 0 UTC", bytes: Array(campaignJSON("c", extra: #","expires_at":"0001-01-01T00:00:00+14:00""#).utf8)),
            BadInput(label: "minute 60", bytes: Array(campaignJSON("c", extra: #","schedule":{"at":"2020-01-01T00:60:00Z"}"#).utf8)),
            BadInput(label: "year 10000", bytes: Array(campaignJSON("c", extra: #","schedule":{"at":"10000-01-01T00:00:00Z"}"#).utf8)),
        ]
    }

    @Test("every bad task is dead-lettered once (raw kept when needed, topic copy within the limit) and the valid task behind it on the partition is created; offsets committed")
    func badTasks() async throws {
        let h = try await IntakeHarness.start()
        defer { h.stop() }
        let bad = Self.badTasks
        var offset = 0
        var badOffsets: [Int: BadInput] = [:]
        let group = h.configuration.kafka.groupID
        var messages: [[UInt8]] = []
        for (i, input) in bad.enumerated() {
            messages.append(input.bytes)
            badOffsets[offset] = input
            messages.append(Array(campaignJSON("after-\(i)").utf8))
            offset += 2
        }
        try await h.sendPaced("reach.tasks", group: group, messages)
        #expect(try await eventually(timeout: .seconds(90), every: .milliseconds(200)) {
            try await h.committed("reach.tasks", group: group) == Int64(offset)
        }, "every offset is committed: the partition never stalls")
        let letters = try await h.deadLetters("reach.tasks")
        #expect(letters.count == bad.count, "one dead letter per bad task: \(letters.keys.sorted())")
        for (at, input) in badOffsets {
            guard let letter = letters[at] else { Issue.record("no dead letter for \(input.label)"); continue }
            #expect(!letter.reason.isEmpty && !letter.error.isEmpty, "\(input.label)")
            #expect(letter.error.utf8.count <= 4_200, "\(input.label): the stored error is bounded")
            if input.needsRaw {
                #expect(letter.raw == hex(input.bytes), "\(input.label): raw keeps the exact bytes")
            } else {
                #expect(letter.raw == nil, "\(input.label)")
            }
        }
        for i in bad.indices {
            #expect(try await campaignState(h.pg, "after-\(i)") != nil, "the valid task after '\(bad[i].label)' was created")
        }
        #expect(try await h.pg.query("SELECT count(*) FROM reach.campaigns").first?.int(0) == bad.count)
        // The whole message stays in the table, even when the topic's copy is cut.
        let whole = try await h.pg.query("SELECT length(payload #>> '{}') FROM reach.dead_letters WHERE kafka_offset = $1", [20]).first?.int(0)
        #expect(whole == bad[10].bytes.count, "1 MB not-JSON kept whole in the table")

        let (published, dlq) = try await h.dlqMessages()
        #expect(published == bad.count && dlq.count == bad.count)
        for message in dlq {
            #expect(message.value.count + (message.key?.count ?? 0) <= 900_000, "a dead letter fits kafka.dlq_max_bytes")
            let json = try JSONParser.parse(message.value)
            #expect(json["source"]?.string == "input" && json["reason"]?.string != nil)
            if json["truncated"] != nil {
                #expect(json["truncated"]?.bool == true)
                #expect(json["payload"]?.string?.contains("truncated") == true)
            }
        }
        #expect(dlq.filter { (try? JSONParser.parse($0.value))?["truncated"]?.bool == true }.count >= 4, "the four 1 MB letters are cut")
        #expect(!h.daemon.isCancelled)
    }

    @Test("NUL in an event's event_id, user_id or properties (escaped or raw), bad numbers and huge values: dead-lettered once, the next event on the partition is sent, offsets committed")
    func badEvents() async throws {
        let h = try await IntakeHarness.start(rules: """
            INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('ping', 'ping', '{"inapp": 1}', '{"body": "p {{properties.n}}"}', false)
            """)
        defer { h.stop() }
        func event(_ id: String, user: String = "u00001", props: String = #"{"n":1}"#) -> String {
            #"{"event_id":"\#(id)","event":"ping","user_id":"\#(user)","properties":\#(props)}"#
        }
        let bad: [BadInput] = [
            BadInput(label: "NUL escape in event_id", bytes: Array(event(#"e\u0000"#).utf8)),
            BadInput(label: "NUL escape in user_id", bytes: Array(event("e", user: #"u\u0000"#).utf8)),
            BadInput(label: "NUL escape in properties", bytes: Array(event("e", props: #"{"n":"\u0000"}"#).utf8)),
            BadInput(label: "NUL escape in a property name", bytes: Array(event("e", props: #"{"\u0000":1}"#).utf8)),
            BadInput(label: "raw NUL in event_id", bytes: withByte(event("e§"), "§", 0), needsRaw: true),
            BadInput(label: "raw NUL in user_id", bytes: withByte(event("e", user: "u§"), "§", 0), needsRaw: true),
            BadInput(label: "raw NUL in properties", bytes: withByte(event("e", props: #"{"n":"§"}"#), "§", 0), needsRaw: true),
            BadInput(label: "invalid UTF-8 in properties", bytes: withByte(event("e", props: #"{"n":"§"}"#), "§", 0xC3), needsRaw: true),
            BadInput(label: "1e-20000 in properties", bytes: Array(event("e", props: #"{"n":1e-20000}"#).utf8)),
            BadInput(label: "1 MB user_id", bytes: Array(event("e", user: String(repeating: "u", count: 990_000)).utf8)),
            BadInput(label: "lenient occurred_at", bytes: Array(#"{"event_id":"e","event":"ping","user_id":"u00001","occurred_at":"2020-01-01T00:60:00Z"}"#.utf8)),
        ]
        var offset = 0
        let group = h.configuration.kafka.groupID + ".events"
        var messages: [[UInt8]] = []
        for (i, input) in bad.enumerated() {
            messages.append(input.bytes)
            messages.append(Array(event("ok-\(i)", user: String(format: "u%05d", i % 10 + 1)).utf8))
            offset += 2
        }
        try await h.sendPaced("reach.events", group: group, messages)
        #expect(try await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
            try await h.committed("reach.events", group: group) == Int64(offset)
        })
        let letters = try await h.deadLetters("reach.events")
        #expect(letters.count == bad.count, "\(letters.keys.sorted())")
        for (i, input) in bad.enumerated() {
            let letter = letters[2 * i]
            #expect(letter != nil, "\(input.label)")
            #expect((letter?.raw != nil) == input.needsRaw, "\(input.label)")
            if input.needsRaw { #expect(letter?.raw == hex(input.bytes)) }
            #expect(try await h.pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id = $1", ["t:ping:ok-\(i)"]).first?.int(0) == 1,
                    "the event after '\(input.label)' was sent")
        }
        let (published, dlq) = try await h.dlqMessages()
        #expect(published == bad.count && dlq.count == bad.count)
        #expect(dlq.allSatisfy { $0.value.count + ($0.key?.count ?? 0) <= 900_000 })
    }

    @Test("kafka.dlq_max_bytes applies to delivery dead letters from the outbox too")
    func deliveryDeadLetterFits() throws {
        let error = String(repeating: "e", count: 50_000)
        let payload = JSONValue.object(["body": .string(String(repeating: "b", count: 2_000_000))]).jsonText
        let json = #"{"reason":"provider_rejected","error":\#(JSONText.quote(error)),"source":"delivery","campaign_id":"c","user_id":"u","payload":\#(payload)}"#
        let (key, value) = DeadLetterPublisher.fit(json, key: "u", maxBytes: 20_000)
        #expect(value.utf8.count + (key?.utf8.count ?? 0) <= 20_000)
        let parsed = try JSONParser.parse(value)
        #expect(parsed["truncated"]?.bool == true && parsed["campaign_id"]?.string == "c" && parsed["reason"]?.string == "provider_rejected")
        #expect(parsed["payload"]?.string?.hasPrefix(#"{"body":"bbb"#) == true)
        #expect(parsed["error"]?.string?.contains("truncated") == true)
        let small = #"{"reason":"x","payload":{"a":1}}"#
        #expect(DeadLetterPublisher.fit(small, key: nil, maxBytes: 20_000).value == small, "small letters are untouched")
    }
}
