import Foundation
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachService
import Testing
import TestSupport

@Suite("failover within a channel: several providers, one breaker each")
struct FailoverTests {
    /// The pipeline's configuration with `push` on `providers`: batches of 20, 2 in flight, quick
    /// retries, a breaker that opens after 4 calls at a failure rate of 0.5.
    func failoverConfiguration(kafka: EmbeddedKafka, url: String, providers: [ProviderSettings], attempts: Int,
                               coolDownMs: Int) throws -> ReachConfiguration {
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: 1,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        var push = configuration.channels["push"]!
        push.url = nil
        push.providers = providers
        push.batchSize = 20
        push.concurrency = 2
        push.retry = .fast(attempts: attempts, baseMs: 50, maxMs: 200)
        push.circuitBreaker.failureRate = 0.5
        push.circuitBreaker.windowSeconds = 10
        push.circuitBreaker.minimumCalls = 4
        push.circuitBreaker.coolDownMs = coolDownMs
        configuration.channels["push"] = push
        return configuration
    }

    @Test("the primary down: its breaker opens and the batches go to the backup with the same message ids; nothing waits for the primary; rows and metrics name the provider")
    func primaryDown() async throws {
        let kafka = try embeddedKafka()
        let primary = DevProvider(behaviour: { _ in (503, nil) })
        let backup = DevProvider()
        let (primaryPort, primaryTask) = try await startProvider(primary)
        defer { primaryTask.cancel() }
        let (backupPort, backupTask) = try await startProvider(backup)
        defer { backupTask.cancel() }
        let url = try await seededDatabase(count: 1_000)
        // Listed backup first with a higher priority number: the order is by priority, not by place.
        let configuration = try failoverConfiguration(kafka: kafka, url: url, providers: [
            ProviderSettings(name: "vendor-b", url: "http://127.0.0.1:\(backupPort)/push", priority: 2),
            ProviderSettings(name: "vendor-a", url: "http://127.0.0.1:\(primaryPort)/push", priority: 1),
        ], attempts: 4, coolDownMs: 120_000)
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)

        let started = ContinuousClock.now
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"fo","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"x"}}"#)
        #expect(try await waitForCampaign(pg, "fo", timeout: .seconds(100)), "done without waiting out the primary's 120 s cool-down")
        let took = ContinuousClock.now - started
        #expect(took < .seconds(100), "took \(took): it waited for the primary")

        var byProvider: [String: Int] = [:]
        for row in try await pg.query("SELECT coalesce(provider, '-'), status, count(*) FROM reach.deliveries WHERE campaign_id = 'fo' GROUP BY 1, 2") {
            byProvider["\(row[0]!)/\(row[1]!)"] = row.int(2)
        }
        let withToken = try await pg.query("SELECT count(*) FROM reach.recipients WHERE push_token IS NOT NULL AND substr(user_id, 2)::int % 50 <> 0").first?.int(0)
        #expect(byProvider["vendor-b/sent"] == withToken, "\(byProvider)")
        #expect(byProvider["vendor-a/sent"] == nil && byProvider["-/dead"] == nil, "\(byProvider)")
        // The primary saw a few batches before its breaker opened; the backup got every message once, with the ids the primary saw.
        #expect(primary.stats.requests >= 4, "\(primary.stats)")
        #expect(backup.received.count == withToken && backup.received.values.allSatisfy { $0 == 1 })
        #expect(Set(primary.received.keys).isSubset(of: Set(backup.received.keys)), "same message ids on the backup")

        let metrics = try await get("http://127.0.0.1:\(httpPort)/metrics").body
        #expect(metrics.contains(#"reach_provider_circuit_open{channel="push",provider="vendor-a"} 1"#), "\(metrics.prefix(0))")
        #expect(metrics.contains(#"reach_provider_circuit_open{channel="push",provider="vendor-b"} 0"#))
        #expect(metrics.contains(#"reach_circuit_open{channel="push"} 0"#), "the channel can still send")
        #expect(metrics.contains(#"reach_messages_total{channel="push",status="sent",provider="vendor-b"} \#(withToken ?? -1)"#))
        #expect(metrics.contains(#"reach_messages_total{channel="push",status="failed",provider="vendor-a"}"#))
        #expect(metrics.contains(#"reach_send_duration_seconds_count{channel="push",provider="vendor-b"}"#))
    }

    @Test("every provider down: sends are deferred as with one provider, and all go out once one recovers")
    func allDown() async throws {
        let kafka = try embeddedKafka()
        let down = Switch()
        let a = DevProvider(behaviour: { _ in (503, nil) })
        let b = DevProvider(behaviour: { _ in down.isOn ? (503, nil) : nil })
        let (aPort, aTask) = try await startProvider(a)
        defer { aTask.cancel() }
        let (bPort, bTask) = try await startProvider(b)
        defer { bTask.cancel() }
        let url = try await seededDatabase(count: 300)
        let configuration = try failoverConfiguration(kafka: kafka, url: url, providers: [
            ProviderSettings(name: "a", url: "http://127.0.0.1:\(aPort)/push"), ProviderSettings(name: "b", url: "http://127.0.0.1:\(bPort)/push"),
        ], attempts: 3, coolDownMs: 2_000)
        let (httpPort, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        let pg = PostgresClient(url: url, poolSize: 1)
        try await publish(kafka, #"{"kind":"campaign","campaign_id":"fo2","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"x"}}"#)
        #expect(try await eventually(timeout: .seconds(20)) {
            try await get("http://127.0.0.1:\(httpPort)/metrics").body.contains(#"reach_circuit_open{channel="push"} 1"#)
        }, "both breakers open: the channel is open")
        #expect(try await eventually(timeout: .seconds(15)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'fo2' AND reason = 'circuit_open'").first?.int(0) ?? 0 > 0
        }, "sends were deferred")
        down.set(false)
        let finished = try await waitForCampaign(pg, "fo2", timeout: .seconds(60))
        var rows: [String] = []
        for row in try await pg.query("SELECT status, coalesce(reason, '-'), coalesce(provider, '-'), count(*) FROM reach.deliveries WHERE campaign_id = 'fo2' GROUP BY 1, 2, 3") {
            rows.append("\(row[0]!)/\(row[1]!)/\(row[2]!): \(row[3]!)")
        }
        let breakers = try await get("http://127.0.0.1:\(httpPort)/metrics").body.split(separator: "\n").filter { $0.contains("circuit_open{") }
        #expect(finished, "\(rows) \(breakers) a: \(a.stats.requests) b: \(b.stats.requests)")
        let dead = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'fo2' AND status = 'dead'").first?.int(0)
        #expect(dead == 0)
        let sentB = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'fo2' AND status = 'sent' AND provider = 'b'").first?.int(0)
        #expect(sentB == b.received.count && b.received.values.allSatisfy { $0 == 1 })
    }
}
