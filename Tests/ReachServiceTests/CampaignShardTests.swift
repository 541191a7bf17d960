import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import TestSupport

// Issue 13, "campaign shards": one campaign cut into shards and worked by
// several `reachd serve` processes at once, checked from outside: what each
// instance's provider received, reach.deliveries, reach.campaigns and
// reach.campaign_shards. Each test prints one "shards:" line with its figures.
@Suite("campaign shards: one campaign worked by several reachd at once", .serialized)
struct CampaignShardTests {
    static let terminal: Set<String> = ["sent", "skipped/opted_out", "skipped/no_address", "skipped/cancelled"]

    struct Setup {
        let kafka: EmbeddedKafka
        let pg: PostgresClient
        let providers: [DevProvider]
        let daemons: [ReachdProcess]
        let stop: @Sendable () -> Void
    }

    /// `instances` daemons in one group, cutting campaigns into up to `shards`
    /// shards of at least 1 000 users; each works up to `runs` shards at once.
    func setup(instances: Int, users: Int, shards: Int, runs: Int, rate: Int, providerDelay: Duration = .zero,
               redis: String? = nil) async throws -> Setup {
        let kafka = try embeddedKafka()
        let url = try await seededDatabase(count: users)
        let (providers, daemons, stop) = try await startInstances(
            instances, kafka: kafka, group: TestEnvironment.unique("sh-group"), postgres: url, prefix: TestEnvironment.unique("sh") + ":",
            pipeline: "lease_ms: 3000, page_size: 500, poll_interval_ms: 200, shards: \(shards), shard_min_recipients: 1000, max_campaigns: \(runs)",
            providerDelay: providerDelay, redis: redis) { port in
            #"sms: {provider: http, url: "http://127.0.0.1:\#(port)/sms", batch_size: 100, rate_per_second: \#(rate), timeout_ms: 2000}"#
        }
        return Setup(kafka: kafka, pg: PostgresClient(url: url, poolSize: 2), providers: providers, daemons: daemons, stop: stop)
    }

    func received(_ s: Setup) -> Int { s.providers.reduce(0) { $0 + $1.received.count } }

    /// Every user one terminal row; counters of the campaign equal to the rows, and to the sum of its shards' pages.
    func expectSettled(_ s: Setup, _ id: String, users: Int, shards: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws -> DeliveryTally {
        let tally = try await DeliveryTally.of(s.pg, id)
        #expect(tally.rows == users && tally.users == users, "every user one row: \(tally)", sourceLocation: sourceLocation)
        #expect(tally.byStatus.keys.allSatisfy(Self.terminal.contains), "only terminal rows: \(tally)", sourceLocation: sourceLocation)
        let c = try #require(try await CampaignStore(client: s.pg).status(id)?.counters)
        #expect(c.targeted == tally.rows && c.sent == tally.byStatus["sent"] ?? 0
                && c.skipped == tally.byStatus.filter { $0.key.hasPrefix("skipped") }.values.reduce(0, +),
                "campaign counters match the rows: \(c) vs \(tally)", sourceLocation: sourceLocation)
        let sums = try #require(try await s.pg.query("""
            SELECT count(*), count(*) FILTER (WHERE done), sum(targeted), sum(sent), count(*) FILTER (WHERE owner IS NOT NULL)
            FROM reach.campaign_shards WHERE campaign_id = $1
            """, [id]).first)
        #expect(sums.int(0) == shards && sums.int(1) == shards && sums.int(4) == 0, "every shard done and let go: \(sums.values)",
                sourceLocation: sourceLocation)
        #expect(sums.int(2) == tally.rows && sums.int(3) == tally.byStatus["sent"] ?? 0, "shard counters sum to the campaign's: \(sums.values)",
                sourceLocation: sourceLocation)
        return tally
    }

    @Test("three reachd work one campaign cut into 9 shards, 3 at a time each; one is killed with SIGKILL mid-run; the survivors finish it: every user once, counters exact, duplicates within the requests in flight at the kill")
    func killOneOfThree() async throws {
        let users = 12_000, id = "sh-kill"
        let s = try await setup(instances: 3, users: users, shards: 9, runs: 3, rate: 1_500)
        defer { s.stop() }
        let started = ContinuousClock.now
        try await publish(s.kafka, #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi {{name}}"}}"#,
                          key: id)
        // The clock for the spread starts once the task is accepted: under the parallel suite an
        // instance's first join of the embedded broker's group once took longer than the 40 s below.
        #expect(try await eventually(timeout: .seconds(120), every: .milliseconds(100)) { try await campaignState(s.pg, id) != nil },
                "the task was accepted")
        let spread = try await eventually(timeout: .seconds(40), every: .milliseconds(50)) {
            s.providers.allSatisfy { $0.received.count > 0 } && received(s) >= users / 4
        }
        #expect(spread, "all three instances send shards of the campaign: \(s.providers.map { $0.received.count })")
        let atKill = s.providers.map { $0.received.count }
        s.daemons[0].kill()
        let done = try await waitForCampaign(s.pg, id, timeout: .seconds(120))
        #expect(done, "the survivors finish: \(s.daemons[1].output)")
        let tally = try await expectSettled(s, id, users: users, shards: 9)
        let ids = s.providers.map { Set($0.received.keys) }
        let atTwo = ids[0].intersection(ids[1].union(ids[2])).count + ids[1].intersection(ids[2]).count
        let twiceAtOne = s.providers.map(twice).reduce(0, +)
        let union = ids.reduce(Set<String>()) { $0.union($1) }
        #expect(tally.sent == union, "sent rows == ids at the providers: \(tally.sent.subtracting(union).count) never sent, \(union.subtracting(tally.sent).count) unrecorded")
        // The killed instance's requests in flight: at most `concurrency` (4) batches of 100 on its one channel.
        let bound = 4 * 100
        let epochs = try await s.pg.query("SELECT max(epoch) FROM reach.campaign_shards WHERE campaign_id = $1", [id]).first?.int(0) ?? 0
        print("shards: kill one of three: received at the kill \(atKill), at the end \(s.providers.map { $0.received.count }); "
              + "\(atTwo) id(s) at two providers, \(twiceAtOne) twice at one (bound \(bound)); highest shard epoch \(epochs); \(tally); "
              + "\(String(format: "%.1f", (ContinuousClock.now - started).seconds)) s")
        #expect(atTwo + twiceAtOne <= bound, "duplicates within the killed instance's requests in flight")
        #expect(epochs >= 2, "a shard of the killed instance was taken over")
        #expect(s.providers[0].received.count == atKill[0] || s.providers[0].received.count - atKill[0] <= bound,
                "the killed instance sent nothing after the kill")
    }

    @Test("two reachd work one campaign cut into 6 shards on a Redis Cluster (3 masters, 3 replicas); the master of one of its key buckets is failed over to its replica mid-run: the campaign finishes, every user once, no id sent twice", .clusterExclusive)
    func clusterFailover() async throws {
        let users = 8_000, id = "sh-cluster"
        #expect(try await TestCluster.whole(), "the cluster is whole before the test")
        let s = try await setup(instances: 2, users: users, shards: 6, runs: 3, rate: 1_000, redis: try TestCluster.url())
        defer { s.stop() }
        // A cut campaign's keys spread over one hash tag per bucket, `{idem:<campaign>#<bucket>}`: a sixth of
        // the users (u0's bucket) and every shard's fence for them (`{idem:<campaign>#<bucket>}#<shard>`) live in this slot.
        let slot = RedisKeySlot.slot(of: "{idem:\(KeySpread.campaign(shards: 6).scope(campaignID: id, userID: "u0"))}")
        let master = try await TestCluster.owner(of: slot)
        let replica = try #require(try await TestCluster.nodes(from: master.endpoint).all.first { $0.masterID == master.id })
        try await publish(s.kafka, #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi {{name}}"}}"#,
                          key: id)
        #expect(try await eventually(timeout: .seconds(40), every: .milliseconds(50)) {
            s.providers.allSatisfy { $0.received.count > 0 } && received(s) >= users / 4
        }, "both instances send: \(s.providers.map { $0.received.count })")
        let atFailover = received(s)
        let started = ContinuousClock.now
        #expect(try await TestCluster.direct(replica.endpoint).send("CLUSTER", "FAILOVER").string == "OK")
        let promoted = try await eventually(timeout: .seconds(20), every: .milliseconds(20)) {
            try await TestCluster.nodes(from: replica.endpoint).myself.isMaster
        }
        let promotedAfter = ContinuousClock.now - started
        #expect(promoted, "the replica \(replica) took over slot \(slot)")
        let done = try await waitForCampaign(s.pg, id, timeout: .seconds(120))
        #expect(done, "the campaign finishes after the failover: \(crashReport(s.daemons[0].output))")
        let tally = try await expectSettled(s, id, users: users, shards: 6)
        let ids = s.providers.map { Set($0.received.keys) }
        let dup = ids[0].intersection(ids[1]).count + s.providers.map(twice).reduce(0, +)
        #expect(tally.sent == ids[0].union(ids[1]), "sent rows == ids at the providers")
        print("shards: Redis Cluster failover of \(master) (slot \(slot)) at \(atFailover) of \(users) received; replica promoted in "
              + "\(promotedAfter); \(dup) duplicate id(s); \(tally)")
        #expect(atFailover < users, "the failover came before the end")
        #expect(dup == 0, "no id sent twice")
        #expect(try await TestCluster.whole(), "the cluster is whole again after the test")
    }

    @Test("pause, resume, then cancel a campaign cut into 8 shards across two reachd (1 000/s, 50 ms provider): no request 2 s after the pause or the cancel, every shard let go, every user once")
    func pauseResumeCancel() async throws {
        let users = 16_000, id = "sh-control"
        let s = try await setup(instances: 2, users: users, shards: 8, runs: 4, rate: 1_000, providerDelay: .milliseconds(50))
        defer { s.stop() }
        try await publish(s.kafka, #"{"kind":"campaign","campaign_id":"\#(id)","segment":{"id":"all"},"channels":{"sms":1},"template":{"body":"hi {{name}}"}}"#,
                          key: id)
        #expect(try await eventually(timeout: .seconds(40), every: .milliseconds(50)) {
            s.providers.allSatisfy { $0.received.count > 0 } && received(s) >= 2_000
        }, "both instances send: \(s.providers.map { $0.received.count })")

        func late(after moment: Date) -> (count: Int, last: Double) {
            let after = s.providers.flatMap(\.requests).filter { $0.arrivedAt > moment }
            let last = after.map { $0.arrivedAt.timeIntervalSince(moment) }.max() ?? 0
            return (after.filter { $0.arrivedAt > moment.addingTimeInterval(2) }.count, last)
        }
        // Applied as the API and the task intake apply it (CampaignControls), so the 2 s measure the
        // shards stopping, not how soon a loaded suite's consumer reads reach.tasks (DaemonTests and
        // APITests cover those paths).
        let controls = CampaignControls(store: CampaignStore(client: s.pg), wake: {})
        let pausedAt = Date()
        #expect(try await controls.apply(id, .pause) == .applied(state: "paused"))
        #expect(try await eventually(timeout: .seconds(10)) { try await campaignState(s.pg, id) == "paused" })
        let stateAfter = Date().timeIntervalSince(pausedAt)
        let letGo = try await eventually(timeout: .seconds(5)) {
            try await s.pg.query("SELECT count(*) FROM reach.campaign_shards WHERE campaign_id = $1 AND owner IS NOT NULL", [id]).first?.int(0) == 0
        }
        try await Task.sleep(for: .seconds(3))
        let paused = late(after: pausedAt)
        let atPause = received(s)
        #expect(letGo, "every shard handed back within 5 s of the pause")
        #expect(paused.count == 0, "\(paused.count) request(s) more than 2 s after the pause (the last \(paused.last) s after; the state read paused \(stateAfter) s after)")
        #expect(atPause < users / 2, "paused well before the end: \(atPause)")

        try await publish(s.kafka, #"{"kind":"resume","campaign_id":"\#(id)"}"#, key: id)
        #expect(try await eventually(timeout: .seconds(30), every: .milliseconds(50)) { received(s) >= atPause + 2_000 }, "resumed")
        let cancelledAt = Date()
        #expect(try await controls.apply(id, .cancel) == .applied(state: "cancelled"))
        #expect(try await waitForCampaign(s.pg, id, state: "cancelled", timeout: .seconds(60)))
        #expect(try await eventually(timeout: .seconds(30)) {
            try await s.pg.query("SELECT finished_at IS NOT NULL FROM reach.campaigns WHERE id = $1", [id]).first?[0] == "t"
        }, "the cancel finishes")
        try await Task.sleep(for: .seconds(2))
        let cancelled = late(after: cancelledAt)
        let tally = try await expectSettled(s, id, users: users, shards: 8)
        let ids = s.providers.map { Set($0.received.keys) }
        let dup = ids[0].intersection(ids[1]).count + s.providers.map(twice).reduce(0, +)
        print("shards: pause/resume/cancel over 8 shards: pause: \(paused.count) late request(s), last \(String(format: "%.2f", paused.last)) s after; "
              + "cancel: \(cancelled.count) late, last \(String(format: "%.2f", cancelled.last)) s after; \(dup) duplicate id(s); \(tally)")
        #expect(cancelled.count == 0, "\(cancelled.count) request(s) more than 2 s after the cancel")
        #expect((tally.byStatus["skipped/cancelled"] ?? 0) > 0, "the rest skipped/cancelled: \(tally)")
        #expect(dup == 0, "no id twice (nothing crashed)")
        #expect(tally.sent == ids[0].union(ids[1]))
    }
}
