import Foundation
import ReachCore
import ReachDevTools
import ReachPostgres
import ReachService
import Testing
import TestSupport

@Suite("delayed work that can never succeed ends visibly")
struct PoisonWorkTests {
    @Test("a retry whose channel was removed from the configuration: rows dead (invalid_task), campaign failed, nothing scheduled")
    func retryOfRemovedChannel() async throws {
        let kafka = try embeddedKafka()
        // Every request is refused with 429 and Retry-After: 3, so each user waits in the delay queue.
        let provider = DevProvider(behaviour: { _ in (429, 3) })
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 40)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.channels["push"]?.retry.maxAttempts = 10
        let (_, first) = try await startDaemon(configuration)
        let pg = PostgresClient(url: url, poolSize: 1)
        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"poison-1","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"hi {{name}}"}}
            """)
        let waiting = try await eventually(timeout: .seconds(30)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'poison-1' AND status = 'scheduled'").first?.int(0) ?? 0 > 0
        }
        #expect(waiting, "retries are waiting")
        first.cancel()
        _ = try? await first.value

        // The same instance comes back without the `push` channel.
        configuration.channels["push"] = nil
        let (_, second) = try await startDaemon(configuration)
        defer { second.cancel() }
        #expect(try await waitForCampaign(pg, "poison-1", state: "failed", timeout: .seconds(30)))
        let settled = try await eventually(timeout: .seconds(30)) {
            try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'poison-1' AND status = 'scheduled'").first?.int(0) == 0
        }
        #expect(settled, "no row is left scheduled")
        let error = try await pg.query("SELECT error FROM reach.campaigns WHERE id = 'poison-1'").first?[0] ?? ""
        #expect(error.contains("push"), "the campaign's error names the channel: \(error)")
        let dead = try await pg.query(
            "SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'poison-1' AND status = 'dead' AND reason = 'invalid_task'").first?.int(0) ?? 0
        let letters = try await pg.query(
            "SELECT count(*) FROM reach.dead_letters WHERE campaign_id = 'poison-1' AND reason = 'invalid_task'").first?.int(0) ?? 0
        #expect(dead > 0 && letters == dead, "dead rows \(dead), dead letters \(letters)")
        let statuses = try await pg.query("SELECT DISTINCT status FROM reach.deliveries WHERE campaign_id = 'poison-1'").compactMap { $0[0] }
        #expect(Set(statuses).isSubset(of: ["dead", "skipped"]), "\(statuses)")
        #expect(provider.received.isEmpty, "the provider accepted nothing")
    }

    @Test("a campaign whose error never clears (its segment's SQL fails on every page) ends failed and frees its slot")
    func errorThatNeverClears() async throws {
        let kafka = try embeddedKafka()
        let provider = DevProvider()
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 200)
        var configuration = try pipelineConfiguration(kafka: kafka, postgresURL: url, providerPort: providerPort,
                                                      logPath: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("e")).path)
        configuration.pipeline.maxCampaigns = 1
        let pg = PostgresClient(url: url, poolSize: 1)
        // The operator's recipients lose a column reachd reads: every page query fails with 42703.
        try await pg.query("ALTER TABLE reach.recipients RENAME COLUMN push_token TO push_token_gone")
        let (_, daemon) = try await startDaemon(configuration)
        defer { daemon.cancel() }
        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"never-clears","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"hi"}}
            """)
        #expect(try await waitForCampaign(pg, "never-clears", state: "failed", timeout: .seconds(90)))
        let error = try await pg.query("SELECT error FROM reach.campaigns WHERE id = 'never-clears'").first?[0] ?? ""
        #expect(error.contains("push_token"), "the error says what failed: \(error)")
        let lease = try await pg.query("SELECT owner IS NULL AND lease_until IS NULL FROM reach.campaigns WHERE id = 'never-clears'").first?[0]
        #expect(lease == "t", "the failed campaign holds no lease")

        // The slot is free again: with the column back, the next campaign runs.
        try await pg.query("ALTER TABLE reach.recipients RENAME COLUMN push_token_gone TO push_token")
        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"after-it","segment":{"id":"all"},"channels":{"push":1},"template":{"body":"hi"}}
            """)
        #expect(try await waitForCampaign(pg, "after-it", timeout: .seconds(60)))
        #expect(try await campaignState(pg, "never-clears") == "failed", "a failed campaign is not picked up again")
    }
}
