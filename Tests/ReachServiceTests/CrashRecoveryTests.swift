import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachService
import Testing
import TestSupport

@Suite("a reachd killed mid-campaign and started again")
struct CrashRecoveryTests {
    @Test("SIGKILL during a 20 000-user campaign: after a restart every user has exactly one row, nothing is lost")
    func killAndResume() async throws {
        let kafka = try embeddedKafka()
        // A provider slow enough that the campaign is still running when it is killed.
        let provider = DevProvider(delay: .milliseconds(15))
        let (providerPort, providerTask) = try await startProvider(provider)
        defer { providerTask.cancel() }
        let url = try await seededDatabase(count: 20_000)
        let pg = PostgresClient(url: url, poolSize: 1)
        let prefix = TestEnvironment.unique("crash") + ":"
        let config = try writeConfig("""
            kafka: {brokers: "\(kafka.bootstrapServers)", group_id: "\(TestEnvironment.unique("g"))"}
            postgres: {url: "\(url)"}
            redis: {url: "\(try TestEnvironment.redisURL())", prefix: "\(prefix)"}
            http: {host: 127.0.0.1, port: 0}
            pipeline: {page_size: 1000, lease_ms: 1500, poll_interval_ms: 200}
            quiet_hours: {start: "00:00", end: "00:00"}
            log: {level: info, format: json}
            channels:
              sms:  {provider: http, url: "http://127.0.0.1:\(providerPort)/sms", batch_size: 100, concurrency: 4}
              push: {provider: http, url: "http://127.0.0.1:\(providerPort)/push", batch_size: 100, concurrency: 4}
              email: {provider: http, url: "http://127.0.0.1:\(providerPort)/email", batch_size: 100, concurrency: 4}
            """)
        let binary = TestEnvironment.reachdBinary.path
        let first = try spawn(binary, ["serve", "--config", config])
        try await publish(kafka, """
            {"kind":"campaign","campaign_id":"crash-1","segment":{"id":"all"},"channels":{"sms":70,"push":30},
             "fallback":["email"],"template":{"body":"hello {{name}}"}}
            """)
        let midway = try await eventually(timeout: .seconds(60), every: .milliseconds(20)) {
            let n = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'crash-1'").first?.int(0) ?? 0
            return n >= 4_000
        }
        #expect(midway, "the campaign never got going: \(first.output.suffix(2000))")
        first.signal(SIGKILL)
        _ = first.waitBlocking()
        let rowsAtKill = try await pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'crash-1'").first?.int(0) ?? 0
        #expect(rowsAtKill < 20_000, "killed before the end")
        #expect(try await campaignState(pg, "crash-1") == "running")

        let second = try spawn(binary, ["serve", "--config", config])
        defer { second.signal(SIGKILL); _ = second.waitBlocking() }
        #expect(try await waitForCampaign(pg, "crash-1", timeout: .seconds(120)), "not resumed: \(second.output.suffix(2000))")

        let rows = try await pg.query("SELECT count(*), count(DISTINCT user_id) FROM reach.deliveries WHERE campaign_id = 'crash-1'").first
        #expect(rows?.int(0) == 20_000 && rows?.int(1) == 20_000, "every user exactly one row")
        let statuses = try await pg.query("SELECT status, count(*) FROM reach.deliveries WHERE campaign_id = 'crash-1' GROUP BY 1")
        #expect(statuses.allSatisfy { ["sent", "skipped"].contains($0[0] ?? "") }, "nothing failed or left pending")
        let sent = Set(try await pg.query("SELECT message_id FROM reach.deliveries WHERE campaign_id = 'crash-1' AND status = 'sent'").compactMap { $0[0] })
        let received = provider.received
        #expect(sent.isSubset(of: Set(received.keys)), "every sent row reached the provider")
        #expect(Set(received.keys).isSubset(of: sent), "the provider saw nothing that is not recorded as sent")
        let duplicates = received.values.filter { $0 > 1 }.count
        // Only batches in flight at the kill can arrive twice: each channel has one
        // pool of senders per process, whatever the pages in flight: 3 channels × 4 concurrent × 100.
        #expect(duplicates <= 1_200, "duplicates in the crash window: \(duplicates)")
        print("crash window: \(duplicates) message id(s) reached the provider twice (rows at kill: \(rowsAtKill))")
        let counters = try await CampaignStore(client: pg).status("crash-1")?.counters
        #expect(counters?.targeted == 20_000)
    }
}
