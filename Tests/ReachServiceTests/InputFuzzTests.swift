import Foundation
import ReachCore
import ReachKafka
import ReachPostgres
import ReachService
import Testing
import TestSupport
import ReachDevTools

@Suite("input fuzzing through the real servers (issue 9 §4)")
struct InputFuzzTests {
    @Test("generated tasks and events, valid and not, interleaved: no crash, one dead letter per invalid message, every valid one processed, offsets at the end")
    func fuzz() async throws {
        let environment = ProcessInfo.processInfo.environment
        let count = Int(environment["REACH_FUZZ_COUNT"] ?? "") ?? 3_000
        let seed = UInt64(environment["REACH_FUZZ_SEED"] ?? "") ?? 0x5EED_0009
        let dlqMax = 20_000  // small, so truncation is exercised often
        let h = try await IntakeHarness.start(dlqMaxBytes: dlqMax, rules: """
            INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('fz', 'fz', '{"inapp": 1}', '{"body": "{{properties.k0}}!"}', false)
            """)
        defer { h.stop() }

        // Every generated message is checked against the parsers first: the
        // generator's claim of validity must match (else the test is wrong, not reachd).
        var fuzzer = InputFuzzer(rng: SplitMix64(seed: seed))
        let parser = TaskParser(channels: Set(h.configuration.channels.keys))
        var tasks: [InputFuzzer.Case] = []
        var events: [InputFuzzer.Case] = []
        var kinds: [String: Int] = [:]
        for i in 0..<count {
            if i % 2 == 0 {
                let c = fuzzer.task()
                let parsed = (try? parser.parse(c.bytes)) != nil
                #expect(parsed == c.valid, "task \(tasks.count) (\(c.kind)) seed \(seed): \(String(decoding: c.bytes.prefix(300), as: UTF8.self))")
                tasks.append(c)
                kinds["task/" + c.kind, default: 0] += 1
            } else {
                let c = fuzzer.event()
                let parsed = (try? TriggerEvent.parse(c.bytes)) != nil
                #expect(parsed == c.valid, "event \(events.count) (\(c.kind)) seed \(seed): \(String(decoding: c.bytes.prefix(300), as: UTF8.self))")
                events.append(c)
                kinds["event/" + c.kind, default: 0] += 1
            }
        }
        let group = h.configuration.kafka.groupID
        // Both topics at once, each in order.
        let taskBytes = tasks.map(\.bytes)
        let eventBytes = events.map(\.bytes)
        async let taskSends: Void = h.sendPaced("reach.tasks", group: group, taskBytes, key: "t")
        async let eventSends: Void = h.sendPaced("reach.events", group: group + ".events", eventBytes, key: "e")
        _ = try await (taskSends, eventSends)

        #expect(try await eventually(timeout: .seconds(240), every: .milliseconds(250)) {
            let t = try await h.committed("reach.tasks", group: group)
            let e = try await h.committed("reach.events", group: group + ".events")
            return t == Int64(tasks.count) && e == Int64(events.count)
        }, "all offsets committed (\(kinds))")

        // Exactly one dead letter per invalid message, at its offset, raw kept when the text copy is not exact.
        for (topic, cases) in [("reach.tasks", tasks), ("reach.events", events)] {
            let letters = try await h.deadLetters(topic)
            let invalid = Set(cases.indices.filter { !cases[$0].valid })
            #expect(Set(letters.keys) == invalid, "\(topic): dead letters at exactly the invalid offsets")
            for i in invalid {
                let exact = String(validating: cases[i].bytes, as: UTF8.self).map { !$0.utf8.contains(0) } ?? false
                #expect((letters[i]?.raw != nil) == !exact, "\(topic) offset \(i) (\(cases[i].kind))")
                if !exact { #expect(letters[i]?.raw == hex(cases[i].bytes)) }
            }
        }
        // Every valid task is a campaign; every valid event sent its message.
        let validTasks = tasks.filter(\.valid).count
        #expect(try await h.pg.query("SELECT count(*) FROM reach.campaigns WHERE id LIKE 'f-%'").first?.int(0) == validTasks)
        let validEvents = events.filter(\.valid).count
        #expect(try await eventually(timeout: .seconds(30)) {
            try await h.pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id LIKE 't:fz:%'").first?.int(0) == validEvents
        }, "every valid event sent once")
        // Every dead letter on the topic fits the configured limit.
        let invalidCount = tasks.count + events.count - validTasks - validEvents
        let (published, dlq) = try await h.dlqMessages()
        #expect(published == invalidCount, "one dead letter per invalid message on reach.dlq")
        #expect(!dlq.isEmpty)
        #expect(dlq.allSatisfy { $0.value.count + ($0.key?.count ?? 0) <= dlqMax })
        #expect(dlq.allSatisfy { (try? JSONParser.parse($0.value))?["source"]?.string == "input" })
        #expect(dlq.contains { (try? JSONParser.parse($0.value))?["truncated"]?.bool == true })
        #expect(kinds.count >= 20, "every class generated: \(kinds)")
    }
}
