import Foundation
import ReachCore
import ReachPostgres
import ReachRedis
import Testing
import TestSupport

/// The fencing tokens themselves, store by store: a lease claimed by another
/// runner makes every write of the old one fail, in PostgreSQL and in Redis.
@Suite("fencing tokens on campaign leases")
struct FencingTests {
    func campaign(_ pg: PostgresClient, _ id: String) async throws {
        try await pg.query("""
            INSERT INTO reach.campaigns (id, spec, state) VALUES ($1, '{"kind":"campaign"}'::jsonb, 'scheduled')
            """, [id])
    }

    @Test("each claim takes the next epoch; the old holder's heartbeat, page write, finish and release are refused")
    func postgresFence() async throws {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 2)
        let store = CampaignStore(client: pg)
        let deliveries = DeliveryStore(client: pg)
        try await campaign(pg, "f-1")
        // Lapses are made by moving lease_until into the past, not by sleeping: a loaded machine cannot make this flaky.
        func lapse() async throws { try await pg.query("UPDATE reach.campaigns SET lease_until = now() - interval '1 second' WHERE id = 'f-1'") }
        let a = try #require(try await store.claim("f-1", owner: "a", lease: .seconds(30)))
        #expect(a.fence.epoch == 1 && !a.takenOver)
        #expect(try await store.claim("f-1", owner: "b", lease: .seconds(10)) == nil, "a live lease is not taken")
        try await lapse()
        // A lapsed lease nobody claimed is renewed by its holder (it was cut off, not replaced).
        #expect(try await store.heartbeat("f-1", fence: a.fence, lease: .seconds(30)) == "running")
        #expect(try await store.claim("f-1", owner: "b", lease: .seconds(10)) == nil, "the renewed lease holds")
        try await lapse()
        let b = try #require(try await store.claim("f-1", owner: "b", lease: .seconds(10)))
        #expect(b.fence.epoch == 2 && b.takenOver, "b took over a lease a never handed back")

        #expect(try await store.heartbeat("f-1", fence: a.fence, lease: .seconds(10)) == nil)
        let row = DeliveryStore.Row(userID: "u1", channel: "sms", status: .sent, attempts: 1, messageID: "m-1")
        await #expect(throws: FencedOut.self) {
            try await deliveries.record(campaignID: "f-1", rows: [row], checkpoint: "u1", fence: a.fence)
        }
        #expect(try await pg.query("SELECT count(*) FROM reach.deliveries").first?.int(0) == 0, "nothing of the stale write applied")
        #expect(try await store.status("f-1")?.checkpoint == nil)
        #expect(try await store.finish("f-1", fence: a.fence) == false)
        try await store.release("f-1", fence: a.fence)
        #expect(try await pg.query("SELECT owner FROM reach.campaigns WHERE id = 'f-1'").first?[0] == "b", "a's release let nothing go")

        try await deliveries.record(campaignID: "f-1", rows: [row], checkpoint: "u1", fence: b.fence)
        #expect(try await store.status("f-1")?.checkpoint == "u1")
        try await store.release("f-1", fence: b.fence)
        let again = try #require(try await store.claim("f-1", owner: "c", lease: .seconds(10)))
        #expect(again.fence.epoch == 3 && !again.takenOver, "a lease handed back is no takeover")
    }

    @Test("the Redis claim refuses an older epoch once a newer one claimed, and claims nothing for it")
    func redisFence() async throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: try TestEnvironment.redisURL()))
        let prefix = TestEnvironment.unique("fence") + ":"
        let store = IdempotencyStore(redis: redis, prefix: prefix)
        let old = Fence(owner: "a", epoch: 1), new = Fence(owner: "b", epoch: 2)
        #expect(try await store.claim([("c", "u1")], owner: "a", fence: old) == [.claimed])
        #expect(try await store.claim([("c", "u1"), ("c", "u2")], owner: "b", fence: new) == [.claimed, .claimed])
        await #expect(throws: FencedOut.self) { _ = try await store.claim([("c", "u3")], owner: "a", fence: old) }
        #expect(try await redis.send("GET", store.fenceKey(campaignID: "c")).string == "2", "the refused claim moved nothing")
        #expect(try await redis.send("EXISTS", store.sentKey(campaignID: "c")).int == 0, "claims write no mark")
        try await store.markSent([("c", "u1")])
        #expect(try await store.claim([("c", "u1"), ("c", "u2")], owner: "b", fence: new) == [.alreadySent, .claimed])
        // A refused claim does not even tell the old holder what was sent.
        await #expect(throws: FencedOut.self) { _ = try await store.claim([("c", "u1")], owner: "a", fence: old) }
        // Unfenced callers (retries, trigger sends) are not held to any epoch.
        #expect(try await store.claim([("c", "u4")], owner: "scheduler") == [.claimed])
    }

    @Test("one claim over 2 500 users (chunks of the script's reads) finds exactly the users marked sent, by position")
    func marksByPosition() async throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: try TestEnvironment.redisURL()))
        let store = IdempotencyStore(redis: redis, prefix: TestEnvironment.unique("marks") + ":", sentTTL: .seconds(60))
        let users = (0..<2_500).map { "u\($0)" + ($0 % 100 == 0 ? " é\t:{x}" : "") }
        let sent = Set(users.indices.filter { $0 % 7 == 3 })
        try await store.markSent(sent.sorted().map { ("big", users[$0]) })
        #expect(try await redis.send("HLEN", store.sentKey(campaignID: "big")).int == Int64(sent.count))
        let ttl = try await redis.send("PTTL", store.sentKey(campaignID: "big")).int ?? -1
        #expect(ttl > 50_000 && ttl <= 60_000, "the hash lives for the sent TTL: \(ttl)")
        let claims = try await store.claim(users.map { ("big", $0) }, owner: "a", fence: Fence(owner: "a", epoch: 1))
        #expect(Set(claims.indices.filter { claims[$0] == .alreadySent }) == sent)
        // Scopes mixed in one call: each answers for its own users.
        let mixed = try await store.claim([("big", users[3]), ("other", users[3]), ("big", users[4])], owner: "s")
        #expect(mixed == [.alreadySent, .claimed, .claimed])
    }
}
