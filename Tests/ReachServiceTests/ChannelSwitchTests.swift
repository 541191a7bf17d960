import Foundation
import ReachCore
import ReachDevTools
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

@Suite("the cluster-wide channel switch in the pipeline")
struct ChannelSwitchPipelineTests {
    @Test("while sms is paused its campaign and trigger sends wait `scheduled` in the delay queue (push still delivers) and the campaign is not done; after resume each goes out once and the campaign ends done; reach_channel_paused shows 1 then 0")
    func pauseAndResume() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider(recordRequests: true)
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 300)
        let pg = PostgresClient(url: url, poolSize: 2)
        try await pg.query(#"INSERT INTO reach.triggers (id, event, channels, template, quiet_hours) VALUES ('paid', 'order.paid', '{"sms": 1}', '{"body": "paid {{properties.n}}"}', false)"#)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.channels["sms"]?.batchSize = 20
        let redis = try RedisClient(url: configuration.redis.url, poolSize: 1)
        let switches = ChannelSwitches(redis: redis, prefix: configuration.redis.prefix)
        #expect(try await switches.pause("sms") == true)
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        func metrics() async throws -> String { try await get("http://127.0.0.1:\(httpPort)/metrics").body }

        try await publish(kafka, #"{"kind":"campaign","campaign_id":"sw-1","segment":{"id":"all"},"channels":{"sms":1,"push":1},"template":{"body":"hi {{name}}"}}"#)
        try await publish(kafka, #"{"event_id":"e-1","event":"order.paid","user_id":"u00001","properties":{"n":7}}"#, key: "u00001", topic: "reach.events")

        // Every user of the campaign has a row; sms rows wait, push rows are settled.
        func count(_ sql: String) async throws -> Int { try await pg.query(sql).first?.int(0) ?? -1 }
        #expect(try await eventually(timeout: .seconds(30)) {
            let all = try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'sw-1'")
            let pushWaiting = try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'sw-1' AND channel = 'push' AND status = 'scheduled'")
            let trigger = try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 't:paid:e-1'")
            return all == 300 && pushWaiting == 0 && trigger == 1
        }, "the campaign's rows were written")
        let waiting = try await pg.query("""
            SELECT campaign_id, user_id FROM reach.deliveries
            WHERE channel = 'sms' AND status = 'scheduled' AND reason = 'channel_paused' AND attempts = 0
            """).map { ($0[0] ?? "", $0[1] ?? "") }
        let smsUsers = try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'sw-1' AND channel = 'sms' AND status <> 'skipped'")
        #expect(smsUsers > 50)
        #expect(waiting.count == smsUsers + 1, "every sms send (campaign and trigger) is deferred, none failed")
        #expect(waiting.contains { $0 == ("t:paid:e-1", "u00001") })
        #expect(try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'sw-1' AND channel = 'push' AND status = 'sent'") > 50)

        // Each waiting user has an item in the delay queue.
        let queue = DelayQueue(redis: redis, prefix: configuration.redis.prefix, shards: configuration.pipeline.delayQueueShards)
        for (campaign, user) in waiting {
            let id = "retry:\(campaign):\(user)"
            let items = "\(configuration.redis.prefix){dq:\(queue.shard(of: id))}:items"
            #expect(try await redis.send("HEXISTS", items, id).int == 1, "\(id) is queued")
        }
        #expect(try await eventually(timeout: .seconds(10)) { try await metrics().contains("reach_channel_paused{channel=\"sms\"} 1") })
        #expect(try await metrics().contains("reach_channel_paused{channel=\"push\"} 0"))

        // The deferred items come back every 5 s and are deferred again: still nothing on sms.
        try await Task.sleep(for: .seconds(7))
        #expect(!provider.requests.contains { $0.path == "/sms" }, "nothing was sent on the paused channel")
        #expect(try await campaignState(pg, "sw-1") == "running", "not done while users wait for the channel")
        #expect(try await count("SELECT count(*) FROM reach.deliveries WHERE channel = 'sms' AND status = 'scheduled'") == waiting.count)

        #expect(try await switches.resume("sms") == true)
        #expect(try await waitForCampaign(pg, "sw-1", timeout: .seconds(30)))
        #expect(try await eventually(timeout: .seconds(15)) {
            try await count("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 't:paid:e-1' AND status = 'sent'") == 1
        })
        #expect(try await count("SELECT count(*) FROM reach.deliveries WHERE status NOT IN ('sent', 'skipped')") == 0)
        #expect(try await count("SELECT count(*) FROM reach.deliveries WHERE channel = 'sms' AND status = 'sent'") == waiting.count)

        // Every message the provider saw, exactly once, and exactly the sent ones.
        let sentIDs = Set(try await pg.query("SELECT message_id FROM reach.deliveries WHERE status = 'sent' AND channel IN ('sms', 'push')").compactMap { $0[0] })
        let requested = provider.requests.flatMap(\.messageIDs)
        #expect(requested.count == Set(requested).count, "a message id arrived twice")
        #expect(Set(requested) == sentIDs)
        #expect(provider.message(MessageID.make(campaignID: "t:paid:e-1", userID: "u00001"))?.body == "paid 7")
        let counters = try await CampaignStore(client: pg).status("sw-1")?.counters
        #expect(counters?.targeted == 300 && counters?.sent == sentIDs.count - 1)

        #expect(try await eventually(timeout: .seconds(10)) { try await metrics().contains("reach_channel_paused{channel=\"sms\"} 0") })
        let exposition = try await metrics()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("metrics")).path
        try exposition.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try await blocking { try run("sh", ["-c", "promtool check metrics < \(file)"]) }
        #expect(!lint.contains("problem") && !lint.contains("error"), "promtool: \(lint)")
    }
}
