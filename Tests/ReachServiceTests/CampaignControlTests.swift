import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

func rows(_ pg: PostgresClient, _ id: String) async throws -> Int {
    try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = $1", [id]).first?.int(0) ?? 0
}

@Suite("timed campaigns and control: schedule, expiry, pause, resume, cancel")
struct CampaignControlTests {
    func daemon(users: Int, providerDelay: Duration = .zero, pageSize: Int = 500) async throws
        -> (kafka: EmbeddedKafka, provider: DevProvider, pg: PostgresClient, stop: @Sendable () -> Void) {
        let kafka = try embeddedKafka()
        let provider = DevProvider(delay: providerDelay)
        let (providerPort, providerTask) = try await startProvider(provider)
        let url = try await seededDatabase(count: users)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.pipeline.pageSize = pageSize
        let (_, daemon) = try await startDaemon(configuration)
        return (kafka, provider, PostgresClient(url: url, poolSize: 1), { daemon.cancel(); providerTask.cancel() })
    }

    @Test("delay_seconds and schedule.at start the campaign at its due time, not before")
    func delayedAndTimed() async throws {
        let (kafka, _, pg, stop) = try await daemon(users: 50)
        defer { stop() }
        let published = Date()
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"later","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"},"schedule":{"delay_seconds":3}}"#)
        let at = RFC3339.format(Date().addingTimeInterval(4))
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"at","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"},"schedule":{"at":"\#(at)"}}"#)
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(pg, "later") == "scheduled" })
        #expect(try await rows(pg, "later") == 0)
        #expect(try await waitForCampaign(pg, "later", timeout: .seconds(20)))
        #expect(try await waitForCampaign(pg, "at", timeout: .seconds(20)))
        let started = try await pg.query("""
            SELECT id, extract(epoch FROM started_at - scheduled_at)::float8 FROM reach.campaigns WHERE id IN ('later', 'at') ORDER BY id
            """)
        for row in started {
            let late = Double(row[1] ?? "") ?? 99
            // The delay queue is polled about once a second; the rest is headroom for the full
            // suite sharing two cores (one CI run measured 1.509 s).
            #expect(late >= 0 && late < 2.5, "\(row[0] ?? "") started \(late) s after its due time")
        }
        #expect(Date().timeIntervalSince(published) >= 3)
    }

    @Test("a campaign scheduled before a restart still fires after it")
    func survivesRestart() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 30)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let pg = PostgresClient(url: url, poolSize: 1)
        let (_, first) = try await startDaemon(configuration)
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"restart","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"},"schedule":{"delay_seconds":4}}"#)
        #expect(try await eventually(timeout: .seconds(15)) { try await campaignState(pg, "restart") == "scheduled" })
        first.cancel()
        _ = try? await first.value
        try await Task.sleep(for: .seconds(1))
        #expect(try await campaignState(pg, "restart") == "scheduled", "not started before its time, nor by the stopped instance")
        let (_, second) = try await startDaemon(configuration)
        defer { second.cancel() }
        #expect(try await waitForCampaign(pg, "restart", timeout: .seconds(30)))
        #expect(try await rows(pg, "restart") == 30)
    }

    @Test("expires_at: nothing is sent after it; the rest are skipped/expired")
    func expired() async throws {
        let (kafka, provider, pg, stop) = try await daemon(users: 300)
        defer { stop() }
        let past = RFC3339.format(Date().addingTimeInterval(-1))
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"old","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"x"},"expires_at":"\#(past)"}"#)
        #expect(try await waitForCampaign(pg, "old"))
        let counts = try await pg.query("SELECT status, reason, count(*) FROM reach.deliveries WHERE campaign_id = 'old' GROUP BY 1, 2")
        #expect(counts.count == 1 && counts.first?[0] == "skipped" && counts.first?[1] == "expired" && counts.first?.int(2) == 300)
        #expect(provider.stats.messages == 0)
    }

    @Test("pause stops sends within 2 s and keeps the checkpoint; resume finishes with no duplicate; counters exact")
    func pauseResume() async throws {
        // A slow provider keeps the campaign running long enough to be paused mid-way, even on a loaded machine.
        let (kafka, provider, pg, stop) = try await daemon(users: 6_000, providerDelay: .milliseconds(150), pageSize: 200)
        defer { stop() }
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"pr","segment":{"id":"all"},"channels":{"sms":1,"push":1},"fallback":["email"],"template":{"body":"x"}}"#, key: "pr")
        #expect(try await eventually(timeout: .seconds(30)) { try await rows(pg, "pr") >= 400 })
        try await publish(kafka, #"{"kind":"pause","campaign_id":"pr"}"#, key: "pr")
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(pg, "pr") == "paused" })
        try await Task.sleep(for: .seconds(2))
        let requestsAfterPause = provider.stats.requests
        // The answers to requests already on the wire at the pause are still recorded; once the
        // runner has handed the campaign back (its lease cleared), nothing more is written.
        #expect(try await eventually(timeout: .seconds(10)) {
            try await pg.query("SELECT owner IS NULL FROM reach.campaigns WHERE id = 'pr'").first?[0] == "t"
        }, "the runner hands a paused campaign back")
        let rowsAfterPause = try await rows(pg, "pr")
        try await Task.sleep(for: .seconds(1))
        #expect(provider.stats.requests == requestsAfterPause, "no provider request more than 2 s after pause")
        #expect(try await rows(pg, "pr") == rowsAfterPause)
        #expect(rowsAfterPause < 6_000)
        let checkpoint = try await pg.query("SELECT checkpoint FROM reach.campaigns WHERE id = 'pr'").first?[0]
        #expect(checkpoint != nil)

        try await publish(kafka, #"{"kind":"resume","campaign_id":"pr"}"#, key: "pr")
        #expect(try await waitForCampaign(pg, "pr", timeout: .seconds(120)))
        #expect(try await rows(pg, "pr") == 6_000)
        #expect(provider.stats.duplicates == 0)
        let status = try await CampaignStore(client: pg).status("pr")
        let sent = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'pr' AND status = 'sent'").first?.int(0)
        #expect(status?.counters.targeted == 6_000 && status?.counters.sent == sent)
        let viaProvider = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'pr' AND status = 'sent' AND channel IN ('sms', 'push')").first?.int(0)
        #expect(provider.stats.distinct == viaProvider)
    }

    @Test("cancel marks every remaining user skipped/cancelled")
    func cancel() async throws {
        let (kafka, provider, pg, stop) = try await daemon(users: 5_000, providerDelay: .milliseconds(300), pageSize: 200)
        defer { stop() }
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"cx","segment":{"id":"all"},"channels":{"sms":1},"fallback":["email"],"template":{"body":"x"}}"#, key: "cx")
        #expect(try await eventually(timeout: .seconds(30)) { try await rows(pg, "cx") >= 200 })
        try await publish(kafka, #"{"kind":"cancel","campaign_id":"cx"}"#, key: "cx")
        // The state turns `cancelled` at once; the campaign is over when the runner marked the rest.
        #expect(try await eventually(timeout: .seconds(60)) {
            try await pg.query("SELECT finished_at IS NOT NULL FROM reach.campaigns WHERE id = 'cx'").first?[0] == "t"
        })
        #expect(try await campaignState(pg, "cx") == "cancelled")
        var byStatus: [String: Int] = [:]
        for row in try await pg.query("SELECT status || '/' || coalesce(reason, ''), count(*) FROM reach.deliveries WHERE campaign_id = 'cx' GROUP BY 1") {
            byStatus[row[0]!] = row.int(1)
        }
        #expect(byStatus.values.reduce(0, +) == 5_000)
        #expect((byStatus["skipped/cancelled"] ?? 0) > 1_000, "\(byStatus)")
        let viaProvider = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'cx' AND status = 'sent' AND channel = 'sms'").first?.int(0)
        #expect(provider.stats.distinct == viaProvider, "only recorded sends reached the provider")
        let counters = try await CampaignStore(client: pg).status("cx")?.counters
        #expect(counters?.targeted == 5_000 && counters?.sent == byStatus["sent/"])
    }
}

@Suite("quiet hours through the pipeline")
struct QuietHoursPipelineTests {
    @Test("users in UTC+8 inside quiet hours are deferred to the window's end; others and opted-out campaigns go now")
    func deferred() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 300)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        // A window around Shanghai's present minute: UTC users (8 h earlier) are outside it.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let now = Date()
        let from = calendar.date(byAdding: .minute, value: -30, to: now)!
        let to = calendar.date(byAdding: .minute, value: 30, to: now)!
        func clock(_ d: Date) -> String { String(format: "%02d:%02d", calendar.component(.hour, from: d), calendar.component(.minute, from: d)) }
        configuration.quietHours.start = clock(from)
        configuration.quietHours.end = clock(to)
        configuration.quietHours.defaultTimezone = "UTC"
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        try await publish(kafka, #"{"kind":"campaign","campaign_id":"qh","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"}}"#)
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"qh-off","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"},"quiet_hours":false}"#)
        #expect(try await waitForCampaign(pg, "qh-off"))
        #expect(try await eventually(timeout: .seconds(20)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'qh'").first?.int(0) == 300
        })
        let deferred = try await pg.query("""
            SELECT d.user_id FROM reach.deliveries d JOIN reach.recipients r USING (user_id)
            WHERE d.campaign_id = 'qh' AND d.status = 'scheduled' AND d.reason = 'quiet_hours' ORDER BY 1
            """).compactMap { $0[0] }
        let shanghai = try await pg.query("""
            SELECT user_id FROM reach.recipients WHERE timezone = 'Asia/Shanghai' AND substr(user_id, 2)::int % 50 <> 0 ORDER BY 1
            """).compactMap { $0[0] }
        #expect(deferred == shanghai, "exactly the Shanghai users wait")
        let sentNow = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'qh' AND status = 'sent'").first?.int(0)
        #expect(sentNow == 300 - shanghai.count - 6, "the rest went now (6 opted out of everything)")
        #expect(try await campaignState(pg, "qh") == "running", "the campaign waits for its deferred users")

        // The deferred sends wait in the delay queue until the window's end, to the minute.
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let queue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        let id = "retry:qh:\(shanghai[0])"
        let due = try await redis.send("ZSCORE", "\(configuration.redis.prefix){dq:\(queue.shard(of: id))}:due", id).string.flatMap(Double.init)
        let end = calendar.nextDate(after: now, matching: DateComponents(hour: calendar.component(.hour, from: to),
                                                                           minute: calendar.component(.minute, from: to), second: 0),
                                    matchingPolicy: .nextTime)!
        #expect(due.map { abs($0 / 1000 - end.timeIntervalSince1970) < 1 } == true, "due \(String(describing: due)), window ends \(end)")
    }
}

@Suite("frequency caps and rate limits through the pipeline")
struct CapsPipelineTests {
    @Test("with a cap of one message a day, a second campaign skips everyone with frequency_cap")
    func dailyCap() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 200)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.frequencyCap.perDay = 1
        configuration.channels["sms"]?.ratePerSecond = 400
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"cap-1","segment":{"id":"all"},"channels":{"sms":1},"fallback":["inapp"],"template":{"body":"x"}}"#)
        #expect(try await waitForCampaign(pg, "cap-1"))
        let smsSent = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'cap-1' AND channel = 'sms' AND status = 'sent'").first?.int(0) ?? 0
        #expect(smsSent > 100)
        // 400 sms/s with a 0.2 s burst: the sms sends cannot finish faster than that.
        #expect(ContinuousClock.now - started >= .milliseconds(Int64(max(0, smsSent - 80) * 1000 / 400)))

        try await publish(kafka, #"{"kind":"campaign","campaign_id":"cap-2","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"}}"#)
        #expect(try await waitForCampaign(pg, "cap-2"))
        let second = try await pg.query("SELECT status, reason, count(*) FROM reach.deliveries WHERE campaign_id = 'cap-2' GROUP BY 1, 2")
        var byStatus: [String: Int] = [:]
        for row in second { byStatus["\(row[0] ?? "")/\(row[1] ?? "")"] = row.int(2) }
        #expect(byStatus["skipped/frequency_cap"] == 196, "\(byStatus)")
        #expect(byStatus["skipped/opted_out"] == 4, "\(byStatus)")
    }
}
