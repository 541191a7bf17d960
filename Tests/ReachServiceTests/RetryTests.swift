import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Synchronization
import Testing
import TestSupport

@Suite("retries through the delay queue, dead letters")
struct RetryTests {
    @Test("a provider failing 30% of requests with 500 and 5% with 400: every user ends sent or dead, none lost, none sent twice")
    func flakyProvider() async throws {
        let kafka = try embeddedKafka()
        // Deterministic per request: requests 0-29 of every 100 (scrambled) fail with 500, 30-34 with 400.
        let provider = DevProvider(behaviour: { n in
            let bucket = Int((UInt64(n) &* 0x9E37_79B9_7F4A_7C15) >> 32) % 100
            if bucket < 30 { return (500, nil) }
            if bucket < 35 { return (400, nil) }
            return nil
        })
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 1_000)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        for name in ["sms", "push"] {
            configuration.channels[name]?.batchSize = 20
            configuration.channels[name]?.retry = .fast(attempts: 10, baseMs: 20, maxMs: 100)
        }
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"flaky-1","segment":{"id":"all"},"channels":{"sms":1,"push":1},
             "template":{"body":"hi {{name}}"}}
            """)
        #expect(try await waitForCampaign(pg, "flaky-1", timeout: .seconds(90)))

        var byStatus: [String: Int] = [:]
        for row in try await pg.query("SELECT status, count(*) FROM reach.deliveries WHERE campaign_id = 'flaky-1' GROUP BY 1") {
            byStatus[row[0]!] = row.int(1)
        }
        let sent = byStatus["sent"] ?? 0, dead = byStatus["dead"] ?? 0, skipped = byStatus["skipped"] ?? 0
        #expect(sent + dead + skipped == 1_000, "\(byStatus)")
        #expect(Set(byStatus.keys).isSubset(of: ["sent", "dead", "skipped"]), "nothing left failed or scheduled: \(byStatus)")
        #expect(dead > 0 && sent > dead, "\(byStatus)")
        let retried = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'flaky-1' AND status = 'sent' AND attempts > 1").first?.int(0) ?? 0
        #expect(retried > 0, "some users were sent only after a retry")

        // The provider accepted each sent message exactly once and nothing else.
        let sentIDs = Set(try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = 'flaky-1' AND status = 'sent'").compactMap { $0[0] })
        let received = provider.received
        #expect(Set(received.keys) == sentIDs)
        #expect(received.values.allSatisfy { $0 == 1 })

        // Every dead delivery is a dead letter, in PostgreSQL and on reach.dlq.
        let letters = try await pg.query("SELECT reason, count(*) FROM reach.dead_letters WHERE source = 'delivery' AND campaign_id = 'flaky-1' GROUP BY 1")
        #expect(letters.reduce(0) { $0 + ($1.int(1) ?? 0) } == dead)
        #expect(letters.allSatisfy { ["provider_rejected", "retries_exhausted"].contains($0[0] ?? "") })
        let counters = try await CampaignStore(client: pg).status("flaky-1")?.counters
        #expect(counters?.sent == sent && counters?.dead == dead && counters?.targeted == 1_000)

        let dlq = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers, groupID: TestEnvironment.unique("dlq"),
                                                          topics: ["reach.dlq"]))
        var onTopic = 0
        let deadline = ContinuousClock.now + .seconds(30)
        for try await message in dlq.messages {
            let text = String(decoding: message.value, as: UTF8.self)
            #expect(text.contains("\"source\" : \"delivery\"") || text.contains("\"source\":\"delivery\""), "\(text)")
            onTopic += 1
            if onTopic == dead || ContinuousClock.now > deadline { break }
        }
        await dlq.close()
        #expect(onTopic == dead)
        #expect(try await pg.query("SELECT count(*) FROM reach.dead_letters WHERE published_at IS NULL").first?.int(0) == 0)
    }

    @Test("a failed provider call counts: reach_messages_total{status=\"failed\"} once per message per failed attempt, reach.campaigns.failed once per user that had one")
    func failedCounted() async throws {
        let kafka = try embeddedKafka()
        // The first request fails (retryably); the retry is accepted.
        let provider = DevProvider(behaviour: { n in n == 1 ? (503, nil) : nil })
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 10)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.channels["sms"]?.retry = .fast(attempts: 3, baseMs: 20, maxMs: 100)
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        // sms reaches u00001…u00009 but u00007 (opted out); u00010 has no phone: 8 users, one request.
        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"fails-once","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi"}}
            """)
        #expect(try await waitForCampaign(pg, "fails-once"))
        let sentAfterRetry = try await pg.query("""
            SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'fails-once' AND status = 'sent' AND attempts = 2
            """).first?.int(0)
        #expect(sentAfterRetry == 8, "each was sent on its second attempt")
        let counters = try await CampaignStore(client: pg).status("fails-once")?.counters
        #expect(counters?.failed == 8 && counters?.sent == 8, "\(String(describing: counters))")

        var failed: Double?
        #expect(try await eventually(timeout: .seconds(10)) {
            failed = try await get("http://127.0.0.1:\(httpPort)/metrics").body.split(separator: "\n")
                .first { $0.hasPrefix("reach_messages_total{") && $0.contains("channel=\"sms\"") && $0.contains("status=\"failed\"") }
                .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
            return failed == 8
        }, "reach_messages_total{channel=\"sms\",status=\"failed\"} is \(String(describing: failed))")
    }
}

final class Switch: Sendable {
    private let on = Mutex(true)
    var isOn: Bool { on.withLock { $0 } }
    func set(_ value: Bool) { on.withLock { $0 = value } }
}

@Suite("dead-letter replay")
struct ReplayTests {
    @Test("replayed dead deliveries are sent once with their original message ids; a second replay does nothing")
    func replay() async throws {
        let kafka = try embeddedKafka()
        let rejecting = Switch()
        let provider = DevProvider(behaviour: { _ in rejecting.isOn ? (400, nil) : nil })
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 200)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        try await publish(kafka, #"{"kind":"campaign","campaign_id":"rp","segment":{"id":"all"},"channels":{"push":1},"template":{"title":"for {{email}}","body":"x {{phone}}"}}"#)
        #expect(try await waitForCampaign(pg, "rp"))
        let dead = try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = 'rp' AND status = 'dead'").compactMap { $0[0] }
        #expect(dead.count > 100, "push is rejected for everyone who has a token")
        // The dead letters' copies of the message mask what the template rendered (a replay renders afresh).
        let copies = try await pg.query("SELECT payload->>'title', payload->>'body' FROM reach.dead_letters WHERE campaign_id = 'rp' AND user_id = 'u00001'")
        #expect(copies.first?[0] == "for u***@example.com" && copies.first?[1] == "x 138****0001", "\(copies.map { [$0[0], $0[1]] })")
        #expect(provider.stats.distinct == 0)

        rejecting.set(false)
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let replay = DeadLetterReplay(postgres: pg, queue: DelayQueue(redis: redis, prefix: configuration.redis.prefix,
                                                                      shards: configuration.pipeline.delayQueueShards))
        #expect(try await replay.replay(.init(campaignID: "rp", channel: "push")) == dead.count)
        #expect(try await eventually(timeout: .seconds(30)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'rp' AND status = 'sent'").first?.int(0) == dead.count
        })
        #expect(Set(provider.received.keys) == Set(dead), "the same message ids")
        let u1 = try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = 'rp' AND user_id = 'u00001'").first?[0]
        #expect(u1.flatMap { provider.message($0) }.map { [$0.title ?? "", $0.body ?? ""] } == ["for user1@example.com", "x 13800000001"],
                "the replay rendered the real values")
        #expect(provider.received.values.allSatisfy { $0 == 1 })
        #expect(try await pg.query("SELECT count(*) FROM reach.dead_letters WHERE campaign_id = 'rp' AND replayed_at IS NULL").first?.int(0) == 0)
        let counters = try await CampaignStore(client: pg).status("rp")?.counters
        #expect(counters?.dead == 0 && counters?.sent == dead.count)

        #expect(try await replay.replay(.init(campaignID: "rp")) == 0)
        try await Task.sleep(for: .milliseconds(500))
        #expect(provider.stats.messages == dead.count, "nothing sent twice")
    }
}

@Suite("circuit breaker per channel")
struct CircuitBreakerIntegrationTests {
    @Test("a provider down for 20 s trips the breaker; sends are deferred, not failed, and all go out after it recovers")
    func outage() async throws {
        let kafka = try embeddedKafka()
        let down = Switch()
        let provider = DevProvider(behaviour: { _ in down.isOn ? (503, nil) : nil })
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 1_000)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.channels["push"]?.batchSize = 20
        configuration.channels["push"]?.concurrency = 2
        configuration.channels["push"]?.retry = .fast(attempts: 3, baseMs: 50, maxMs: 200)
        configuration.channels["push"]?.circuitBreaker.failureRate = 0.5
        configuration.channels["push"]?.circuitBreaker.windowSeconds = 10
        configuration.channels["push"]?.circuitBreaker.minimumCalls = 4
        configuration.channels["push"]?.circuitBreaker.coolDownMs = 2_000
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"cb","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"x"}}"#)
        #expect(try await eventually(timeout: .seconds(15)) {
            try await get("http://127.0.0.1:\(httpPort)/metrics").body.contains("reach_circuit_open{channel=\"push\"} 1")
        }, "the breaker opened")
        #expect(try await eventually(timeout: .seconds(15)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'cb' AND reason = 'circuit_open'").first?.int(0) ?? 0 > 0
        }, "sends were deferred")
        let wait = started + .seconds(20) - ContinuousClock.now
        if wait > .zero { try await Task.sleep(for: wait) }
        #expect(try await campaignState(pg, "cb") == "running", "still waiting for the provider")
        down.set(false)
        #expect(try await waitForCampaign(pg, "cb", timeout: .seconds(60)))
        var byStatus: [String: Int] = [:]
        for row in try await pg.query("SELECT status, count(*) FROM reach.deliveries WHERE campaign_id = 'cb' GROUP BY 1") {
            byStatus[row[0]!] = row.int(1)
        }
        #expect(byStatus["dead"] == nil, "nothing died during the outage: \(byStatus)")
        let withToken = try await pg.query("SELECT count(*) FROM reach.recipients WHERE push_token IS NOT NULL AND substr(user_id, 2)::int % 50 <> 0").first?.int(0)
        #expect(byStatus["sent"] == withToken)
        #expect(provider.received.count == withToken && provider.received.values.allSatisfy { $0 == 1 })
        #expect(try await get("http://127.0.0.1:\(httpPort)/metrics").body.contains("reach_circuit_open{channel=\"push\"} 0"))
    }
}

extension RetrySettings {
    /// Retries quick enough for a test.
    static func fast(attempts: Int, baseMs: Int, maxMs: Int) -> RetrySettings {
        var retry = RetrySettings()
        (retry.maxAttempts, retry.baseMs, retry.maxMs) = (attempts, baseMs, maxMs)
        return retry
    }
}
