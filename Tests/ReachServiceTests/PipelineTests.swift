import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

@Suite("the campaign pipeline end to end, through Kafka, PostgreSQL, Redis and a local provider")
struct PipelineTests {
    @Test("a campaign reaches every user exactly once; re-publishing it is a no-op")
    func campaignEndToEnd() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 2_000)
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("email") + ".jsonl").path
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort, logPath: logPath)
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 2)

        let task = """
            {"kind": "campaign", "campaign_id": "e2e-1", "segment": {"id": "all"},
             "channels": {"sms": 70, "push": 30}, "fallback": ["email", "inapp"],
             "template": {"title": "Hi {{name}}", "body": "{{name}}, coupon {{data.coupon}} (level {{attrs.level}})",
                          "channels": {"push": {"title": "Push for {{name}}"}}},
             "data": {"coupon": "SPRING10"}}
            """
        try await publish(kafka, task, key: "e2e-1")
        #expect(try await waitForCampaign(pg, "e2e-1"), "campaign did not finish")

        // Every user has exactly one row.
        let counts = try await pg.query("SELECT status, coalesce(reason, ''), count(*) FROM reach.deliveries WHERE campaign_id = 'e2e-1' GROUP BY 1, 2")
        var byStatus: [String: Int] = [:]
        for row in counts { byStatus["\(row[0]!)/\(row[1]!)"] = row.int(2) }
        #expect(byStatus.values.reduce(0, +) == 2_000, "\(byStatus)")
        #expect(byStatus["skipped/opted_out"] == 2_000 / 50, "users opted out of everything are skipped: \(byStatus)")
        #expect(byStatus["failed/"] == nil && byStatus["dead/"] == nil)

        // The counters match the rows.
        let campaign = try await CampaignStore(client: pg).status("e2e-1")
        #expect(campaign?.counters.targeted == 2_000)
        #expect(campaign?.counters.sent == byStatus["sent/"])
        #expect(campaign?.counters.skipped == byStatus["skipped/opted_out"])

        // The provider got each sms/push message id exactly once, and nothing else.
        let viaProvider = try await pg.query("""
            SELECT message_id FROM reach.deliveries WHERE campaign_id = 'e2e-1' AND status = 'sent' AND channel IN ('sms', 'push')
            """).compactMap { $0[0] }
        let received = provider.received
        #expect(Set(received.keys) == Set(viaProvider))
        #expect(received.values.allSatisfy { $0 == 1 }, "a message id arrived twice")
        #expect(provider.idempotencyKeys.values.allSatisfy { $0 == 1 })
        #expect(!viaProvider.isEmpty)

        // Routing honours weights roughly and fallbacks apply: users without a phone never get sms.
        let channels = try await pg.query("SELECT channel, count(*) FROM reach.deliveries WHERE campaign_id = 'e2e-1' AND status = 'sent' GROUP BY 1")
        var byChannel: [String: Int] = [:]
        for row in channels { byChannel[row[0]!] = row.int(1) }
        #expect((byChannel["sms"] ?? 0) > (byChannel["push"] ?? 0))
        #expect((byChannel["email"] ?? 0) > 0, "users without phone or opted out of sms fall back to email")
        let smsWithoutPhone = try await pg.query("""
            SELECT count(*) FROM reach.deliveries d JOIN reach.recipients r USING (user_id)
            WHERE d.campaign_id = 'e2e-1' AND d.channel = 'sms' AND (r.phone IS NULL OR substr(r.user_id, 2)::int % 7 = 0)
            """).first?.int(0)
        #expect(smsWithoutPhone == 0)

        // Rendering: recipient fields, data.* and attrs.*, per-channel title override.
        let u1 = MessageID.make(campaignID: "e2e-1", userID: "u00001")
        if let m = provider.message(u1) {
            #expect(m.body == "User 1, coupon SPRING10 (level 1)")
            #expect(m.title == "Hi User 1" || m.title == "Push for User 1")
        } else {
            Issue.record("u00001 was not sent through the provider")
        }

        // E-mail went to the log provider, masked.
        let logLines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n")
        #expect(logLines.count == byChannel["email"])
        #expect(logLines.allSatisfy { $0.contains("***@example.com") })

        // Metrics count what the rows say, and the exposition passes promtool.
        let metrics = try await get("http://127.0.0.1:\(httpPort)/metrics").body
        #expect(metrics.contains("reach_messages_total{channel=\"sms\",status=\"sent\",provider=\"http\"} \(byChannel["sms"] ?? 0)"), "\(metrics)")
        #expect(metrics.contains("reach_messages_total{channel=\"none\",status=\"skipped\"} \(byStatus["skipped/opted_out"] ?? 0)"))
        #expect(metrics.contains("reach_send_duration_seconds_count{channel=\"push\",provider=\"http\"}"))
        #expect(metrics.contains("reach_end_to_end_seconds_bucket{kind=\"task\""))
        #expect(metrics.contains("reach_kafka_consumer_lag{topic=\"reach.tasks\",partition=\"0\"}"))
        #expect(metrics.contains("reach_campaigns{state=\"running\"}"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("metrics")).path
        try metrics.write(toFile: file, atomically: true, encoding: .utf8)
        let lint = try await blocking { try run("sh", ["-c", "promtool check metrics < \(file)"]) }
        #expect(!lint.contains("problem") && !lint.contains("error"), "promtool: \(lint)")

        // The campaign's sent hash has a field for each sent user, and expires (the sent TTL).
        let redis = try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1)
        let marks = IdempotencyStore(redis: redis, prefix: configuration.redis.prefix)
        #expect(try await marks.isSent(scope: "e2e-1", userID: "u00001"))
        #expect(try await redis.send("HLEN", marks.sentKey(campaignID: "e2e-1")).int == Int64(campaign?.counters.sent ?? -1), "every channel marks its sent users")
        #expect((try await redis.send("PTTL", marks.sentKey(campaignID: "e2e-1")).int ?? -1) > 0)

        // The task's offset is committed.
        let observer = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers,
                                                               groupID: configuration.kafka.groupID, topics: []))
        let committed = try await observer.committedOffsets([TopicPartition("reach.tasks", 0), TopicPartition("reach.tasks", 1)])
        #expect(committed.values.compactMap { $0 }.reduce(0, +) == 1)

        // Publishing the same campaign again changes nothing.
        try await publish(kafka, task, key: "e2e-1")
        #expect(try await eventually(timeout: .seconds(20)) {
            let c = try await observer.committedOffsets([TopicPartition("reach.tasks", 0), TopicPartition("reach.tasks", 1)])
            return c.values.compactMap { $0 }.reduce(0, +) == 2
        })
        try await Task.sleep(for: .milliseconds(500))
        #expect(provider.stats.duplicates == 0)
        #expect(try await pg.query("SELECT count(*) FROM reach.deliveries").first?.int(0) == 2_000)
        await observer.close()
    }

    @Test("e-mail through the daemon over real SMTP: the server receives each message id exactly once")
    func emailOverSMTP() async throws {
        let kafka = try embeddedKafka()
        let sink = try await SMTPSink()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 150)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        var email = ChannelSettings()
        email.provider = "smtp"
        email.host = "127.0.0.1"
        email.port = sink.port
        email.from = "CRM <crm@example.com>"
        email.usernameEnv = "REACH_TEST_SMTP_USER"
        email.passwordEnv = "REACH_TEST_SMTP_PASS"
        email.tlsVerify = false
        email.batchSize = 20
        email.concurrency = 2
        configuration.channels["email"] = email
        setenv("REACH_TEST_SMTP_USER", "crm", 1)
        setenv("REACH_TEST_SMTP_PASS", "s3cret", 1)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"mail-1","segment":{"id":"all"},"channels":{"email":1},
             "template":{"title":"Offer for {{name}}","body":"Dear {{name}}, {{data.coupon}}"},"data":{"coupon":"C-9"}}
            """)
        #expect(try await waitForCampaign(pg, "mail-1"))
        let sent = try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = 'mail-1' AND status = 'sent'").compactMap { $0[0] }
        let skipped = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'mail-1' AND status = 'skipped'").first?.int(0)
        #expect(sent.count + (skipped ?? 0) == 150)
        #expect(skipped == 3, "u00050, u00100, u00150 opted out of everything")
        let received = sink.messages
        let ids = received.compactMap { $0["message_id"] as? String }
        #expect(ids.count == sent.count && Set(ids) == Set(sent), "each message id exactly once")
        #expect(received.allSatisfy { $0["tls"] as? Bool == true && $0["authenticated"] as? Bool == true })
        #expect(received.contains { $0["subject"] as? String == "Offer for User 1" && ($0["body"] as? String)?.contains("Dear User 1, C-9") == true })
    }

    @Test("in-app messages land in reach.inbox and are published on Redis")
    func inapp() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 40)
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("email")).path
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort, logPath: logPath)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)
        // A subscriber on the in-app channels, the way an app's websocket gateway would listen.
        let redisPort = try #require(URL(string: try TestEnvironment.redisURL())?.port)
        let subscriber = try spawn("redis-cli", ["-p", "\(redisPort)", "--csv", "psubscribe", "\(configuration.redis.prefix)inapp:*"])
        defer { subscriber.signal(SIGKILL); _ = subscriber.waitBlocking() }
        #expect(try await eventually { subscriber.output.contains("psubscribe") })

        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"inbox-1","segment":{"user_ids":["u00001","u00002","nobody"]},
             "channels":{"inapp":1},"template":{"title":"T {{user_id}}","body":"B {{name}}"}}
            """)
        #expect(try await waitForCampaign(pg, "inbox-1"))
        let inbox = try await pg.query("SELECT user_id, title, body FROM reach.inbox WHERE campaign_id = 'inbox-1' ORDER BY user_id")
        #expect(inbox.map { $0[0] ?? "" } == ["nobody", "u00001", "u00002"], "in-app needs only a user id")
        #expect(inbox.rows[1][1] == "T u00001" && inbox.rows[1][2] == "B User 1")
        let refs = try await pg.query("SELECT provider_ref FROM reach.deliveries WHERE campaign_id = 'inbox-1' AND status = 'sent'")
        #expect(refs.count == 3 && refs.allSatisfy { $0[0] != nil })
        #expect(try await eventually { subscriber.output.components(separatedBy: "\"pmessage\"").count - 1 == 3 }, "\(subscriber.output)")
        #expect(subscriber.output.contains("\(configuration.redis.prefix)inapp:u00001"))
        #expect(subscriber.output.contains("T u00001") && subscriber.output.contains("campaign_id"))
    }

    @Test("invalid tasks become dead letters (table and topic), their offsets are committed, and the partition moves on")
    func invalidInput() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 10)
        let configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        // All on one key, so all on one partition, in this order.
        try await publish(kafka, "{not json", key: "k")
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"bad","segment":{"id":"all"},"channels":{"fax":1},"template":{"body":"x"}}"#, key: "k")
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"good","segment":{"id":"all"},"channels":{"inapp":1},"template":{"body":"x"}}"#, key: "k")
        #expect(try await waitForCampaign(pg, "good"), "a valid task after invalid ones still runs")

        let letters = try await pg.query("SELECT reason, error, payload #>> '{}' FROM reach.dead_letters WHERE source = 'input' ORDER BY kafka_offset")
        #expect(letters.count == 2)
        #expect(letters.rows[0][0] == "unparseable" && letters.rows[0][2] == "{not json")
        #expect(letters.rows[1][0] == "invalid" && letters.rows[1][1]?.contains("channels.fax") == true)
        #expect(try await campaignState(pg, "bad") == nil)

        let dlq = try KafkaConsumer(configuration: .init(bootstrapServers: kafka.bootstrapServers, groupID: TestEnvironment.unique("dlq"),
                                                          topics: ["reach.dlq"]))
        var seen: [String] = []
        for try await message in dlq.messages {
            seen.append(String(decoding: message.value, as: UTF8.self))
            if seen.count == 2 { break }
        }
        await dlq.close()
        #expect(seen.allSatisfy { $0.contains("\"source\":\"input\"") && $0.contains("\"failed_at\"") })
        #expect(seen[0].contains("\"payload\":\"{not json\""))
    }
}

@Suite("one pool of senders per channel and process")
struct SenderPoolTests {
    @Test("pages in flight share their channel's senders: never more than `concurrency` requests at once, and all of them used")
    func sharedSenders() async throws {
        let fixture = try await PipelineFixture.make(users: 1_200, provider: DevProvider(delay: .milliseconds(150)))
        defer { fixture.stop() }
        var configuration = fixture.configuration
        // Small pages, three in flight, each with several sms batches: with senders per page
        // this would put up to 3 × 2 requests on the wire at once.
        configuration.pipeline.pageSize = 100
        configuration.pipeline.pagesInFlight = 3
        configuration.channels["sms"]?.batchSize = 10
        configuration.channels["sms"]?.concurrency = 2
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        try await publish(fixture.kafka, """
            {"kind":"campaign","campaign_id":"pool-1","segment":{"id":"all"},"channels":{"sms":1},"fallback":["email"],
             "template":{"body":"hi {{name}}"}}
            """, key: "pool-1")
        #expect(try await waitForCampaign(fixture.pg, "pool-1", timeout: .seconds(120)), "campaign did not finish")
        let sent = try await fixture.pg.query(
            "SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'pool-1' AND channel = 'sms' AND status = 'sent'").first?.int(0) ?? 0
        #expect(sent > 500, "most users have a phone: \(sent)")
        #expect(fixture.provider.received.count == sent)
        let most = fixture.provider.stats.maxInFlight["/sms"] ?? 0
        #expect(most == 2, "sms requests on the wire at once: \(most)")
    }
}
