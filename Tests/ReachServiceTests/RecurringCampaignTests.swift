import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

/// Recurring campaigns through the daemon. Time is driven, not waited for: a
/// monthly series is published, then its row is moved back to a run in the
/// past (as if the instance had been down) and fired through its queue item
/// or the runner's poll of overdue series.
@Suite("recurring campaigns (schedule.cron): runs as child campaigns, once each; pause, resume, cancel; missed runs")
struct RecurringCampaignTests {
    struct Harness {
        let kafka: EmbeddedKafka
        let pg: PostgresClient
        let redis: RedisClient
        let queue: DelayQueue
        let prefix: String
        let stop: @Sendable () -> Void

        /// Publishes a monthly series (00:00 UTC on the 1st) and waits for its row.
        func publishSeries(_ id: String, cron: String = "0 0 1 * *", extra: String = "") async throws {
            try await publish(kafka, #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"run {{user_id}}"},"schedule":{"cron":"\#(cron)"}\#(extra)}"#, key: id)
            #expect(try await eventually(timeout: .seconds(15)) { try await campaignState(pg, id) != nil })
        }

        func control(_ kind: String, _ id: String) async throws {
            try await publish(kafka, #"{"kind":"\#(kind)","campaign_id":"\#(id)"}"#, key: id)
        }

        /// Moves the series back to wait for `run`, as if it had fallen due while nothing ran.
        func rewind(_ id: String, to run: Date) async throws {
            try await pg.query("UPDATE reach.campaigns SET scheduled_at = $2::timestamptz WHERE id = $1", [id, RFC3339.format(run)])
        }

        /// Makes the series' queue item due now (a redelivered or duplicated item).
        func fireItem(_ id: String) async throws {
            try await queue.schedule(id: "cron:\(id)", payload: #"{"kind":"cron_run"}"#, dueMs: Int64(Date().timeIntervalSince1970 * 1000))
        }

        /// When the series' queue item is due (ms), if it has one waiting.
        func itemDue(_ id: String) async throws -> Int64? {
            let key = "cron:\(id)"
            return try await redis.send("ZSCORE", "\(prefix){dq:\(queue.shard(of: key))}:due", key).string.flatMap(Double.init).map { Int64($0) }
        }

        func scheduledAt(_ id: String) async throws -> Date? {
            try await pg.query("SELECT extract(epoch FROM scheduled_at)::float8 FROM reach.campaigns WHERE id = $1", [id])
                .first.flatMap { $0[0] }.flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
        }

        func runs(of id: String) async throws -> [String] {
            try await pg.query("SELECT id FROM reach.campaigns WHERE parent_id = $1 ORDER BY id", [id]).compactMap { $0[0] }
        }
    }

    func harness(users: Int = 30) async throws -> Harness {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        let url = try await seededDatabase(count: users)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let (_, daemon) = try await startDaemon(configuration)
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let queue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        return Harness(kafka: kafka, pg: PostgresClient(url: url, poolSize: 1), redis: redis, queue: queue,
                       prefix: configuration.redis.prefix, stop: { daemon.cancel(); providerTask.cancel() })
    }

    /// 00:00 UTC on the 1st of this month and of the next: the last and the next run of a monthly series.
    var months: (this: Date, next: Date) {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let month = utc.dateInterval(of: .month, for: Date())!
        return (month.start, month.end)
    }

    @Test("a due run becomes campaign <id>@<time>, runs to done with its own rows; the next run is queued; firing again creates nothing")
    func runsOnce() async throws {
        let h = try await harness()
        defer { h.stop() }
        let (this, next) = months
        try await h.publishSeries("monthly")
        let row = try await h.pg.query("SELECT state, recurring, started_at IS NULL FROM reach.campaigns WHERE id = 'monthly'").first
        #expect(row?[0] == "scheduled" && row?[1] == "t" && row?[2] == "t")
        #expect(try await h.scheduledAt("monthly") == next, "the series waits for its first run")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.itemDue("monthly") == epochMs(next) + 20 }, "and so does its queue item")

        try await h.rewind("monthly", to: this)
        try await h.fireItem("monthly")
        let runID = "monthly@\(CampaignRun.format(this))"
        #expect(try await waitForCampaign(h.pg, runID, timeout: .seconds(30)))
        #expect(try await rows(h.pg, runID) == 30)
        let sent = try await h.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = $1 AND status = 'sent'", [runID]).first?.int(0)
        #expect(sent == 30)
        // The run's task is the series' own with the run's id and no schedule.
        let spec = try await h.pg.query("SELECT spec->>'campaign_id', spec ? 'schedule', recurring FROM reach.campaigns WHERE id = $1", [runID]).first
        #expect(spec?[0] == runID && spec?[1] == "f" && spec?[2] == "f")
        // The series itself never ran and waits for the next run, in PostgreSQL and in the queue.
        #expect(try await h.scheduledAt("monthly") == next)
        #expect(try await campaignState(h.pg, "monthly") == "scheduled")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.itemDue("monthly") == epochMs(next) + 20 })

        // The same item firing again (redelivered) changes nothing.
        try await h.fireItem("monthly")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.itemDue("monthly") == epochMs(next) + 20 })
        // Even a series moved back to the run it already fired (a move that was lost) creates it once.
        try await h.rewind("monthly", to: this)
        try await h.fireItem("monthly")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.scheduledAt("monthly") == next })
        try await Task.sleep(for: .seconds(1))
        #expect(try await h.runs(of: "monthly") == [runID])
        #expect(try await rows(h.pg, runID) == 30)
        #expect(try await h.pg.query("SELECT count(*) FROM reach.inbox WHERE campaign_id = $1", [runID]).first?.int(0) == 30,
                "one message per user per run")
    }

    @Test("missed runs: a series far behind fires only its latest run (found by the runner's poll, without a queue item); expires_at ends a series")
    func missedRuns() async throws {
        let h = try await harness(users: 10)
        defer { h.stop() }
        try await h.publishSeries("daily", cron: "0 0 * * *")
        // A month behind; its queue item (due tomorrow) plays no part.
        try await h.pg.query("UPDATE reach.campaigns SET scheduled_at = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 days' WHERE id = 'daily'")
        #expect(try await eventually(timeout: .seconds(20)) { try await h.runs(of: "daily").count == 1 })
        let runID = try await h.runs(of: "daily")[0]
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let today = utc.startOfDay(for: Date())
        #expect(runID == "daily@\(CampaignRun.format(today))", "only today's run fires")
        #expect(try await h.scheduledAt("daily") == utc.date(byAdding: .day, value: 1, to: today))
        #expect(try await waitForCampaign(h.pg, runID, timeout: .seconds(30)))
        try await Task.sleep(for: .seconds(2))
        #expect(try await h.runs(of: "daily").count == 1, "no other missed run fired")

        // A series whose expires_at comes before its next run ends then, without a run.
        let expires = RFC3339.format(Date().addingTimeInterval(2))
        try await h.publishSeries("short", extra: #","expires_at":"\#(expires)""#)
        #expect(try await waitForCampaign(h.pg, "short", state: "done", timeout: .seconds(20)))
        #expect(try await h.runs(of: "short").isEmpty)
    }

    @Test("pause holds the series (a run due meanwhile is skipped), resume runs again, cancel ends the series")
    func pauseResumeCancel() async throws {
        let h = try await harness(users: 10)
        defer { h.stop() }
        let (this, next) = months
        try await h.publishSeries("series")
        try await h.control("pause", "series")
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(h.pg, "series") == "paused" })

        // Due while paused: the series moves past the run without creating it.
        try await h.rewind("series", to: this)
        #expect(try await eventually(timeout: .seconds(20)) { try await h.scheduledAt("series") == next })
        #expect(try await h.runs(of: "series").isEmpty)
        #expect(try await campaignState(h.pg, "series") == "paused")

        try await h.control("resume", "series")
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(h.pg, "series") == "scheduled" })
        try await h.rewind("series", to: this)
        let runID = "series@\(CampaignRun.format(this))"
        #expect(try await waitForCampaign(h.pg, runID, timeout: .seconds(30)))
        #expect(try await rows(h.pg, runID) == 10)

        try await h.control("cancel", "series")
        #expect(try await eventually(timeout: .seconds(10)) {
            try await h.pg.query("SELECT state, finished_at IS NOT NULL FROM reach.campaigns WHERE id = 'series'").first.map { [$0[0], $0[1]] } == ["cancelled", "t"]
        })
        // Its item firing after the cancel is dropped and creates nothing.
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        try await h.rewind("series", to: utc.date(byAdding: .month, value: -1, to: this)!)
        try await h.fireItem("series")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.itemDue("series") == nil })
        try await Task.sleep(for: .seconds(2))
        #expect(try await h.runs(of: "series") == [runID])
        #expect(try await campaignState(h.pg, runID) == "done", "a run is a campaign of its own: the series' cancel leaves it alone")
    }
}

extension RecurringCampaignTests {
    @Test("a run that fell due while every instance was down fires once after the restart, and not again after the next")
    func restart() async throws {
        let fixture = try await PipelineFixture.make(users: 10)
        defer { fixture.stop() }
        let configuration = fixture.configuration
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let h = Harness(kafka: fixture.kafka, pg: fixture.pg, redis: redis,
                        queue: DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards),
                        prefix: configuration.redis.prefix, stop: {})
        let (this, next) = months
        let (_, first) = try await startDaemon(configuration)
        try await h.publishSeries("restart")
        #expect(try await eventually(timeout: .seconds(10)) { try await h.itemDue("restart") != nil })
        first.cancel()
        _ = try? await first.value

        // While nothing runs, the run falls due: the series waits for it and its item is due.
        try await h.rewind("restart", to: this)
        try await h.fireItem("restart")
        try await Task.sleep(for: .seconds(1))
        #expect(try await h.runs(of: "restart").isEmpty)

        let (_, second) = try await startDaemon(configuration)
        let runID = "restart@\(CampaignRun.format(this))"
        #expect(try await waitForCampaign(h.pg, runID, timeout: .seconds(30)))
        #expect(try await h.scheduledAt("restart") == next)
        second.cancel()
        _ = try? await second.value

        let (_, third) = try await startDaemon(configuration)
        defer { third.cancel() }
        try await Task.sleep(for: .seconds(3))
        #expect(try await h.runs(of: "restart") == [runID])
        #expect(try await rows(h.pg, runID) == 10)
        #expect(try await h.itemDue("restart") == epochMs(next) + 20)
    }
}

private func epochMs(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
