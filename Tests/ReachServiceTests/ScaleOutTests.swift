import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import Testing
import TestSupport

// Issue 13, "instances in one group": two `reachd serve` processes in one
// consumer group split the reach.events partitions, hand them over when one
// stops, and share one channel's cluster-wide rate limit. Checked from outside
// only: the records published, reach.deliveries, and what each instance's
// provider received (with arrival times).
@Suite("scale out: two reachd in one group share reach.events and one rate limit")
struct ScaleOutTests {
    struct Group {
        let kafka: EmbeddedKafka
        let pg: PostgresClient
        let providers: [DevProvider]
        let daemons: [ReachdProcess]
        let stop: @Sendable () -> Void
    }

    /// Two daemons in one group (one database, one Redis prefix), each with its
    /// own provider; one trigger rule `paid` on `order.paid` → sms.
    func group(users: Int, smsRate: Int?) async throws -> Group {
        let kafka = try embeddedKafka()
        let url = try await seededDatabase(count: users)
        let pg = PostgresClient(url: url, poolSize: 2)
        try await pg.query("""
            INSERT INTO reach.triggers (id, event, channels, fallback, template, delay_seconds, quiet_hours) VALUES
              ('paid', 'order.paid', '{"sms": 1}', '[]', '{"body": "order {{properties.order_no}} paid"}', 0, false)
            """)
        let groupID = TestEnvironment.unique("so-group")
        let prefix = TestEnvironment.unique("so") + ":"
        let rate = smsRate.map { ", rate_per_second: \($0)" } ?? ""
        let (providers, daemons, stop) = try await startInstances(
            2, kafka: kafka, group: groupID, postgres: url, prefix: prefix, pipeline: "poll_interval_ms: 200") { port in
            #"sms: {provider: http, url: "http://127.0.0.1:\#(port)/sms", batch_size: 50\#(rate)}"#
        }
        return Group(kafka: kafka, pg: pg, providers: providers, daemons: daemons, stop: stop)
    }

    /// Publishes events `from..<to` (user ids cycle over `users`), keyed by user.
    func publishEvents(_ kafka: EmbeddedKafka, _ range: Range<Int>, users: Int) async throws {
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: kafka.bootstrapServers))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in range {
                let user = String(format: "u%05d", i % users + 1)
                let event = #"{"event_id": "so-\#(i)", "event": "order.paid", "user_id": "\#(user)", "properties": {"order_no": "N\#(i)"}}"#
                group.addTask { try await producer.send(topic: "reach.events", key: Array(user.utf8), value: Array(event.utf8)) }
                if i % 200 == 199 { try await group.waitForAll() }
            }
            try await group.waitForAll()
        }
    }

    /// The trigger send of every event: its row status and message id.
    func triggerRows(_ pg: PostgresClient) async throws -> [String: String] {
        var statuses: [String: String] = [:]
        for row in try await pg.query("SELECT campaign_id, status FROM reach.deliveries WHERE campaign_id LIKE 't:paid:%'") {
            statuses[row[0] ?? "?"] = row[1] ?? "?"
        }
        return statuses
    }

    @Test("two reachd split the reach.events partitions; SIGTERM one half way: the other takes its partitions, every event sent once, none at both providers")
    func eventsHandOver() async throws {
        let users = 200, events = 1_200
        let setup = try await group(users: users, smsRate: nil)
        defer { setup.stop() }
        try await publishEvents(setup.kafka, 0..<(events / 2), users: users)
        let firstHalf = try await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
            try await triggerRows(setup.pg).count == events / 2
        }
        let settledFirst = try await triggerRows(setup.pg).count
        #expect(firstHalf, "first half not settled: \(settledFirst) of \(events / 2)")
        let before = setup.providers.map { $0.received.count }
        #expect(before.allSatisfy { $0 > 0 }, "both instances consumed a share of the partitions: \(before)")

        // One stops gracefully; the survivor must take over its partitions.
        setup.daemons[0].process.signal(SIGTERM)
        let exit = try await setup.daemons[0].process.wait(within: .seconds(20))
        #expect(exit == 0, "the stopped instance exits 0: \(String(describing: exit)) \(setup.daemons[0].output)")
        try await publishEvents(setup.kafka, (events / 2)..<events, users: users)
        let all = try await eventually(timeout: .seconds(90), every: .milliseconds(250)) {
            try await triggerRows(setup.pg).count == events
        }
        let rows = try await triggerRows(setup.pg)
        #expect(all, "every event has its row: \(rows.count) of \(events); survivor: \(setup.daemons[1].output)")
        let a = setup.providers[0].received, b = setup.providers[1].received
        let sent = rows.values.filter { $0 == "sent" }.count
        print("scale-out: events hand-over: provider A \(a.count) ids (\(before[0]) before the stop), B \(b.count) ids; \(sent) sent rows of \(events) events")
        // Seeded users without a phone or opted out end skipped; every other event is sent.
        #expect(sent > events / 2 && rows.values.allSatisfy { $0 == "sent" || $0 == "skipped" }, "\(Dictionary(grouping: rows.values, by: { $0 }).mapValues(\.count))")
        let sentIDs = Set(try await setup.pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id LIKE 't:paid:%' AND status = 'sent'").compactMap { $0[0] })
        #expect(Set(a.keys).isDisjoint(with: b.keys), "no message id at both providers")
        #expect(a.values.allSatisfy { $0 == 1 } && b.values.allSatisfy { $0 == 1 }, "no message id twice at one provider")
        #expect(Set(a.keys).union(b.keys) == sentIDs && a.count + b.count == sent, "every sent row reached a provider once: \(a.count) + \(b.count) of \(sent)")
        #expect(b.count > before[1], "the survivor sent the second half")
        #expect(a.count == before[0] || a.count - before[0] < 100, "the stopped instance sent nothing new after its stop (beyond what it finished)")
    }

    @Test("two reachd sending one channel at rate_per_second 150 never exceed 1.1 × 150 over any 5 s window at their providers together")
    func sharedRateLimit() async throws {
        let users = 200, events = 1_800, rate = 150
        let setup = try await group(users: users, smsRate: rate)
        defer { setup.stop() }
        try await publishEvents(setup.kafka, 0..<events, users: users)
        let settled = try await eventually(timeout: .seconds(90), every: .milliseconds(250)) {
            let rows = try await triggerRows(setup.pg)
            return rows.count == events && rows.values.allSatisfy { $0 == "sent" || $0 == "skipped" }
        }
        let settledRows = try await triggerRows(setup.pg).count
        #expect(settled, "not settled: \(settledRows) of \(events)")
        // One stamp per message, at the arrival of its request, from both providers.
        var stamps: [Double] = []
        var perProvider: [Int] = []
        for provider in setup.providers {
            let requests = provider.requests.filter(\.valid)
            perProvider.append(requests.reduce(0) { $0 + $1.messageIDs.count })
            for r in requests { stamps += Array(repeating: r.arrivedAt.timeIntervalSince1970, count: r.messageIDs.count) }
        }
        stamps.sort()
        #expect(perProvider.allSatisfy { $0 > 0 }, "both instances sent: \(perProvider)")
        var worst = 0
        var start = stamps.first ?? 0
        while start + 5 <= (stamps.last ?? 0) {
            var lo = 0, hi = 0
            lo = stamps.firstIndex { $0 >= start } ?? stamps.count
            hi = stamps.firstIndex { $0 >= start + 5 } ?? stamps.count
            worst = max(worst, hi - lo)
            start += 0.25
        }
        let span = (stamps.last ?? 0) - (stamps.first ?? 0)
        print("scale-out: shared rate limit \(rate)/s: \(stamps.count) messages in \(String(format: "%.1f", span)) s, worst 5 s window \(worst) (limit \(rate * 5 * 11 / 10)), per instance \(perProvider)")
        #expect(span >= 5, "the load lasts longer than one window: \(span) s")
        #expect(worst <= rate * 5 * 11 / 10, "\(worst) messages in a 5 s window; limit \(rate)/s")
        #expect(worst >= rate * 5 * 7 / 10, "the limit is not starving the senders: \(worst)")
    }
}
