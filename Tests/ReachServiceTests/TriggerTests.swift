import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
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

    @Test("a backlog of events goes out in batches: each (rule, event) once, copies in the same batch once, bad ones dead-lettered, a rule that cannot render is left out, all offsets committed")
    func batchedBacklog() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 50)
        let pg = PostgresClient(url: url, poolSize: 1)
        try await pg.query("""
            INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES
              ('shipped', 'order.shipped', '{"push": 1}', '{"body": "{{properties.n}} shipped"}', false),
              ('shipped-inbox', 'order.shipped', '{"inapp": 1}', '{"body": "{{properties.n}}"}', false),
              ('broken', 'order.shipped', '{"sms": 1}', '{"body": "{{#open}} never closed"}', false)
            """)
        // The backlog is on the topic before the daemon starts, so its first polls return many at once.
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: kafka.bootstrapServers))
        var sends: [String] = []
        for i in 0..<300 {
            let user = String(format: "u%05d", i % 50 + 1)
            sends.append(#"{"event_id": "e-\#(i)", "event": "order.shipped", "user_id": "\#(user)", "properties": {"n": \#(i)}}"#)
            if i % 30 == 0 { sends.append(sends.last!) }  // a copy right behind the original
        }
        sends.insert(#"{"event": "order.shipped"}"#, at: 100)
        sends.insert("not json", at: 200)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, value) in sends.enumerated() {
                group.addTask { _ = try await producer.send(topic: "reach.events", key: "k\(i % 7)", value: value) }
            }
            try await group.waitForAll()
        }
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }

        let observer = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers,
                                                               groupID: configuration.kafka.groupID + ".events", topics: []))
        defer { Task { await observer.close() } }
        let partitions = [TopicPartition("reach.events", 0), TopicPartition("reach.events", 1)]
        #expect(try await eventually(timeout: .seconds(30)) {
            try await observer.committedOffsets(partitions).values.compactMap { $0 }.reduce(0, +) == Int64(sends.count)
        })
        // Every (rule, event) has one row: sent, or skipped for users the seed opted out.
        for rule in ["shipped", "shipped-inbox"] {
            let rows = try await pg.query("SELECT status, reason, count(*) FROM reach.deliveries WHERE campaign_id LIKE $1 GROUP BY 1, 2",
                                          ["t:\(rule):%"])
            #expect(rows.map { $0.int(2) ?? 0 }.reduce(0, +) == 300, "\(rule)")
            #expect(rows.allSatisfy { $0[0] == "sent" || ($0[0] == "skipped" && $0[1] == "opted_out") }, "\(rule)")
        }
        let sent = try await pg.query("SELECT message_id, campaign_id FROM reach.deliveries WHERE campaign_id LIKE 't:shipped:%' AND status = 'sent'")
        #expect(sent.count > 250)
        #expect(provider.stats.distinct == sent.count && provider.stats.messages == sent.count, "\(provider.stats)")
        #expect(provider.stats.requests < sent.count / 10, "events share provider requests: \(provider.stats.requests)")
        for row in sent.prefix(20) {
            let n = (row[1] ?? "").split(separator: "-").last.map(String.init) ?? ""
            #expect(provider.message(row[0] ?? "")?.body == "\(n) shipped")
        }
        #expect(try await pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id LIKE 't:shipped-inbox:%'").first?.int(0)
                == pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id LIKE 't:shipped-inbox:%' AND status = 'sent'").first?.int(0))
        #expect(try await pg.query("SELECT count(*) FROM reach.dead_letters WHERE source = 'input' AND topic = 'reach.events'").first?.int(0) == 2)
        #expect(try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id LIKE 't:broken:%'").first?.int(0) == 0)
    }

    @Test("a first trigger send that was deferred (quiet hours, open breaker: no attempt spent) goes out when its item fires")
    func deferredFirstAttempt() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 5)
        let pg = PostgresClient(url: url, poolSize: 1)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template) VALUES ('later', 'x', '{"sms": 1}', '{"body": "deferred {{properties.k}}"}')"#)
        let campaignID = "t:later:evt-9"
        let messageID = MessageID.make(campaignID: campaignID, userID: "u00003")
        // What the dispatcher leaves behind for a deferral: the row `scheduled` with 0 attempts, and a retry item.
        try await pg.query("""
            INSERT INTO reach.deliveries (campaign_id, user_id, channel, status, reason, attempts, message_id)
            VALUES ($1, 'u00003', 'sms', 'scheduled', 'quiet_hours', 0, $2)
            """, [campaignID, messageID])
        let event = #"{"event_id":"evt-9","event":"x","user_id":"u00003","properties":{"k":"v"}}"#
        var trigger = JSONObjectWriter()
        trigger.add("kind", "trigger")
        trigger.add("rule_id", "later")
        trigger.add("event", event)
        var payload = JSONObjectWriter()
        payload.add("kind", "retry")
        payload.add("campaign_id", campaignID)
        payload.add("user_id", "u00003")
        payload.add("channel", "sms")
        payload.add("attempts", 0)
        payload.add("trigger", trigger.finish())
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let redis = try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1)
        let queue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        try await queue.schedule(id: "retry:\(campaignID):u00003", payload: payload.finish(), dueMs: Int64(Date().timeIntervalSince1970 * 1000))
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }

        #expect(try await eventually(timeout: .seconds(20)) { provider.received[messageID] == 1 })
        #expect(provider.message(messageID)?.body == "deferred v")
        #expect(try await eventually(timeout: .seconds(10)) {
            let row = try await pg.query("SELECT status, attempts FROM reach.deliveries WHERE campaign_id = $1", [campaignID]).first
            return row?[0] == "sent" && row?.int(1) == 1
        })
    }

    @Test("reach_end_to_end_seconds{kind=\"event\"} runs from the event being consumed, not from its send starting")
    func endToEndFromConsumption() async throws {
        let fixture = try await PipelineFixture.make(users: 5, provider: DevProvider())
        defer { fixture.stop() }
        let (kafka, provider, pg, configuration) = (fixture.kafka, fixture.provider, fixture.pg, fixture.configuration)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('e2e', 'signed.up', '{"sms": 1}', '{"body": "welcome"}', false)"#)
        let (port, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }

        // After reading the event the intake loads the rules (its first event: nothing loaded them
        // yet). With reach.triggers locked, the event waits there, consumed but not yet sent.
        let held = Duration.seconds(2)
        let locker = PostgresClient(url: fixture.url, poolSize: 1)
        try await locker.withTransaction { conn in
            _ = try await conn.query("LOCK TABLE reach.triggers IN ACCESS EXCLUSIVE MODE")
            try await publish(kafka, #"{"event_id":"evt-e2e","event":"signed.up","user_id":"u00001"}"#, key: "u00001", topic: "reach.events")
            let waiting = try await eventually(timeout: .seconds(20), every: .milliseconds(20)) {
                try await pg.query("""
                    SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM reach.triggers%'
                    """).first?.int(0) ?? 0 > 0
            }
            #expect(waiting, "the intake consumed the event and waits for the rules")
            try await Task.sleep(for: held)
        }
        let messageID = MessageID.make(campaignID: "t:e2e:evt-e2e", userID: "u00001")
        #expect(try await eventually(timeout: .seconds(20)) { provider.received[messageID] == 1 })

        var series: [String: Double] = [:]
        #expect(try await eventually(timeout: .seconds(10)) {
            series = [:]
            for line in try await get("http://127.0.0.1:\(port)/metrics").body.split(separator: "\n")
            where line.hasPrefix("reach_end_to_end_seconds_") && line.contains("kind=\"event\"") && !line.contains("_bucket") {
                let parts = line.split(separator: " ")
                series[String(parts[0])] = Double(parts.last ?? "")
            }
            return series["reach_end_to_end_seconds_count{kind=\"event\"}"] == 1
        }, "\(series)")
        let sum = try #require(series["reach_end_to_end_seconds_sum{kind=\"event\"}"])
        #expect(sum >= held.seconds, "the time the event waited before its send counts: \(sum) s")
    }

    /// A trigger send's queue context (what `TriggerSender.Delayed` encodes).
    static func context(rule: String, event: String) -> String {
        var trigger = JSONObjectWriter()
        trigger.add("kind", "trigger")
        trigger.add("rule_id", rule)
        trigger.add("event", event)
        return trigger.finish()
    }

    /// A retry item as the dispatcher (with `context`) or a replay / the stale-row sweep (without) writes it.
    static func retryItem(_ campaignID: String, user: String, context: String?) -> String {
        var payload = JSONObjectWriter()
        payload.add("kind", "retry")
        payload.add("campaign_id", campaignID)
        payload.add("user_id", user)
        payload.add("channel", "sms")
        payload.add("attempts", 1)
        if let context { payload.add("trigger", context) }
        return payload.finish()
    }

    @Test("a replayed dead letter of a trigger send is rebuilt from the rule and event it keeps, and sent once")
    func replayedTriggerDeadLetter() async throws {
        let rejecting = Switch()
        let fixture = try await PipelineFixture.make(users: 5, provider: DevProvider(behaviour: { _ in rejecting.isOn ? (400, nil) : nil }))
        defer { fixture.stop() }
        let (kafka, provider, pg, configuration) = (fixture.kafka, fixture.provider, fixture.pg, fixture.configuration)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('paid', 'order.paid', '{"sms": 1}', '{"body": "paid {{properties.order_no}}"}', false)"#)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }

        let campaignID = "t:paid:evt-dl"
        let messageID = MessageID.make(campaignID: campaignID, userID: "u00001")
        try await publish(kafka, #"{"event_id":"evt-dl","event":"order.paid","user_id":"u00001","properties":{"order_no":"A-9"}}"#,
                          key: "u00001", topic: "reach.events")
        #expect(try await eventually(timeout: .seconds(20)) {
            try await pg.query("SELECT status FROM reach.deliveries WHERE campaign_id = $1", [campaignID]).first?[0] == "dead"
        }, "the provider refused it")
        #expect(try await pg.query("SELECT payload -> 'trigger' ->> 'rule_id' FROM reach.dead_letters WHERE campaign_id = $1",
                                   [campaignID]).first?[0] == "paid", "the dead letter keeps the rule and the event")

        rejecting.set(false)
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let replay = DeadLetterReplay(postgres: pg, queue: DelayQueue(redis: redis, prefix: configuration.redis.prefix,
                                                                      shards: configuration.pipeline.delayQueueShards))
        #expect(try await replay.replay(.init(campaignID: campaignID)) == 1)
        #expect(try await eventually(timeout: .seconds(20)) {
            try await pg.query("SELECT status FROM reach.deliveries WHERE campaign_id = $1", [campaignID]).first?[0] == "sent"
        }, "the replay reached a terminal state: sent")
        #expect(provider.received[messageID] == 1)
        #expect(provider.message(messageID)?.body == "paid A-9", "rendered from the event's properties again")
    }

    @Test("trigger retries end terminal: rule deleted → skipped/cancelled (with or without the event in the item; a delayed first send too); event unknown → dead/trigger_context_lost; event kept by a replayed dead letter → sent")
    func triggerRetriesEnd() async throws {
        let fixture = try await PipelineFixture.make(users: 5, provider: DevProvider())
        defer { fixture.stop() }
        let (provider, pg, configuration) = (fixture.provider, fixture.pg, fixture.configuration)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('live', 'x', '{"sms": 1}', '{"body": "live {{properties.k}}"}', false)"#)
        func event(_ id: String, _ user: String, _ rule: String) -> String {
            #"{"event_id":"\#(id)","event":"x","user_id":"\#(user)","properties":{"k":"\#(rule)-\#(id)"}}"#
        }
        // (campaign, user, item carries the event?)
        let retries: [(String, String, String?)] = [
            ("t:gone:evt-1", "u00001", Self.context(rule: "gone", event: event("evt-1", "u00001", "gone"))),
            ("t:gone:evt-2", "u00002", nil),
            ("t:live:evt-3", "u00003", nil),
            ("t:live:evt-4", "u00004", nil),
        ]
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let queue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for (campaignID, user, context) in retries {
            try await pg.query("""
                INSERT INTO reach.deliveries (campaign_id, user_id, channel, status, reason, attempts, message_id)
                VALUES ($1, $2, 'sms', 'scheduled', 'retry', 1, $3)
                """, [campaignID, user, MessageID.make(campaignID: campaignID, userID: user)])
            try await queue.schedule(id: "retry:\(campaignID):\(user)", payload: Self.retryItem(campaignID, user: user, context: context), dueMs: now)
        }
        // u00004's send was dead-lettered and replayed; its dead letter kept the event.
        try await pg.query("""
            INSERT INTO reach.dead_letters (reason, error, source, campaign_id, user_id, channel, attempts, payload, replayed_at, published_at)
            VALUES ('provider_rejected', '400', 'delivery', 't:live:evt-4', 'u00004', 'sms', 1,
                    jsonb_build_object('message_id', $1::text, 'trigger', $2::jsonb), now(), now())
            """, [MessageID.make(campaignID: "t:live:evt-4", userID: "u00004"), Self.context(rule: "live", event: event("evt-4", "u00004", "live"))])
        // A delayed first send of the deleted rule: no row yet.
        var delayed = JSONObjectWriter()
        delayed.add("kind", "trigger")
        delayed.add("rule_id", "gone")
        delayed.add("event", event("evt-5", "u00005", "gone"))
        try await queue.schedule(id: "trigger:t:gone:evt-5", payload: delayed.finish(), dueMs: now)

        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        func row(_ campaignID: String) async throws -> String {
            guard let r = try await pg.query("SELECT status, coalesce(reason, '') FROM reach.deliveries WHERE campaign_id = $1", [campaignID]).first else { return "none" }
            return "\(r[0] ?? "")/\(r[1] ?? "")"
        }
        let expected = ["t:gone:evt-1": "skipped/cancelled", "t:gone:evt-2": "skipped/cancelled", "t:live:evt-3": "dead/trigger_context_lost",
                        "t:live:evt-4": "sent/", "t:gone:evt-5": "skipped/cancelled"]
        var seen: [String: String] = [:]
        let settled = try await eventually(timeout: .seconds(20)) {
            for campaignID in expected.keys { seen[campaignID] = try await row(campaignID) }
            return seen == expected
        }
        #expect(settled, "\(seen)")
        #expect(try await pg.query("SELECT last_error FROM reach.deliveries WHERE campaign_id = 't:gone:evt-1'").first?[0]?.contains("gone") == true)
        #expect(try await pg.query("""
            SELECT count(*) FROM reach.dead_letters WHERE campaign_id = 't:live:evt-3' AND reason = 'trigger_context_lost' AND replayed_at IS NULL
            """).first?.int(0) == 1, "the lost one is a dead letter")
        let sentID = MessageID.make(campaignID: "t:live:evt-4", userID: "u00004")
        #expect(provider.message(sentID)?.body == "live live-evt-4")
        #expect(provider.stats.messages == 1, "nothing else was sent")
        // Nothing is left in the delay queue to fire again.
        #expect(try await eventually(timeout: .seconds(5)) { try await queue.depth() == 0 })
    }
}
