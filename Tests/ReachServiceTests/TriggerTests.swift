import Foundation
import ReachCore
import ReachKafka
import ReachPostgres
import ReachService
import Testing
import TestSupport

@Suite("trigger events (reach.events, reach.triggers)")
struct TriggerTests {
    @Test("an event sends one message per matching rule with properties rendered; redelivery sends nothing more; bad events are dead letters")
    func triggers() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 20)
        let pg = PostgresClient(url: url, poolSize: 1)
        try await pg.query("""
            INSERT INTO reach.triggers (id, event, channels, fallback, template, delay_seconds, quiet_hours) VALUES
              ('paid-sms', 'order.paid', '{"sms": 1}', '["inapp"]', '{"body": "{{name}}: order {{properties.order_no}} paid {{properties.amount}}"}', 0, false),
              ('paid-later', 'order.paid', '{"inapp": 1}', '[]', '{"title": "Thanks", "body": "review {{properties.order_no}}"}', 2, false),
              ('shipped', 'order.shipped', '{"push": 1}', '[]', '{"body": "shipped"}', 0, false)
            """)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template, enabled) VALUES ('off', 'order.paid', '{"sms": 1}', '{"body": "x"}', false)"#)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }

        let event = #"{"event_id": "evt-81f3", "event": "order.paid", "user_id": "u00001", "occurred_at": "2026-11-22T10:00:00Z", "properties": {"order_no": "A-77", "amount": 129.5}}"#
        let published = Date()
        try await publish(kafka, event, key: "u00001", topic: "reach.events")
        let smsID = MessageID.make(campaignID: "t:paid-sms:evt-81f3", userID: "u00001")
        #expect(try await eventually(timeout: .seconds(20)) { provider.received[smsID] == 1 })
        #expect(provider.message(smsID)?.body == "User 1: order A-77 paid 129.5")
        #expect(provider.stats.distinct == 1, "the disabled rule sent nothing; the delayed one has not fired yet")

        // The delayed rule fires after its 2 s, through the delay queue.
        #expect(try await eventually(timeout: .seconds(20)) {
            try await pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id = 't:paid-later:evt-81f3'").first?.int(0) == 1
        })
        let created = try await pg.query("SELECT extract(epoch FROM created_at)::float8 FROM reach.inbox WHERE campaign_id = 't:paid-later:evt-81f3'").first
        #expect((Double(created?[0] ?? "") ?? 0) - published.timeIntervalSince1970 >= 1.9)
        #expect(try await pg.query("SELECT body FROM reach.inbox WHERE campaign_id = 't:paid-later:evt-81f3'").first?[0] == "review A-77")

        // Redelivery of the same event (same event_id): nothing new.
        try await publish(kafka, event, key: "u00001", topic: "reach.events")
        try await publish(kafka, #"{"event": "order.paid"}"#, key: "u00001", topic: "reach.events")
        #expect(try await eventually(timeout: .seconds(20)) {
            try await pg.query("SELECT count(*) FROM reach.dead_letters WHERE source = 'input' AND topic = 'reach.events'").first?.int(0) == 1
        })
        try await Task.sleep(for: .seconds(3))
        #expect(provider.stats.messages == 1, "no second sms")
        #expect(try await pg.query("SELECT count(*) FROM reach.inbox WHERE user_id = 'u00001'").first?.int(0) == 1)
        #expect(try await pg.query("SELECT error FROM reach.dead_letters WHERE topic = 'reach.events'").first?[0]?.contains("event_id") == true)

        // A rule changed with plain SQL takes effect within 5 s.
        try await pg.query(#"UPDATE reach.triggers SET enabled = true, template = '{"body": "now on"}' WHERE id = 'off'"#)
        try await Task.sleep(for: .seconds(5))
        try await publish(kafka, #"{"event_id": "evt-2", "event": "order.paid", "user_id": "u00002"}"#, key: "u00002", topic: "reach.events")
        let offID = MessageID.make(campaignID: "t:off:evt-2", userID: "u00002")
        #expect(try await eventually(timeout: .seconds(20)) { provider.received[offID] == 1 })
        #expect(provider.message(offID)?.body == "now on")
        let rows = try await pg.query("SELECT campaign_id, status FROM reach.deliveries WHERE user_id = 'u00002' ORDER BY 1")
        #expect(rows.allSatisfy { $0[1] == "sent" || $0[0] == "t:paid-later:evt-2" })
    }
}
