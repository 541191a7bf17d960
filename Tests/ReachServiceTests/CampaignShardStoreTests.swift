import Foundation
import ReachCore
import ReachPostgres
import ReachRedis
import Testing
import TestSupport

/// Campaign shards in PostgreSQL and Redis, store by store: the cut, claims
/// by several owners at once, a lease per shard fenced like the campaign's,
/// and ranges that cover the segment once with pages that do not scan the rest.
@Suite("campaign shards: cut, claimed, fenced, read in ranges")
struct CampaignShardStoreTests {
    /// A running campaign with spec `{"kind":"campaign"}`, claimed by `owner`.
    func claimedCampaign(_ pg: PostgresClient, _ id: String, owner: String = "a") async throws -> CampaignStore.Claim {
        try await pg.query("INSERT INTO reach.campaigns (id, spec, state) VALUES ($1, '{\"kind\":\"campaign\"}'::jsonb, 'scheduled')", [id])
        return try #require(try await CampaignStore(client: pg).claim(id, owner: owner, lease: .seconds(30)))
    }

    @Test("only the campaign's lease holder cuts it, once; bounds must ascend in PostgreSQL's order; a cut campaign is claimed again only when every shard is done")
    func split() async throws {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 2)
        let campaigns = CampaignStore(client: pg), shards = CampaignShardStore(client: pg)
        let claim = try await claimedCampaign(pg, "s-1")
        let ranges = ShardRange.ranges(bounds: ["g", "p"])
        #expect(try await shards.split("s-1", fence: Fence(owner: "x", epoch: claim.fence.epoch), ranges: ranges, planned: 30) == false,
                "not the holder")
        await #expect(throws: ShardCutError.self) {
            _ = try await shards.split("s-1", fence: claim.fence, ranges: ShardRange.ranges(bounds: ["p", "g"]), planned: 30)
        }
        #expect(try await shards.split("s-1", fence: claim.fence, ranges: ranges, planned: 30))
        #expect(try await shards.split("s-1", fence: claim.fence, ranges: ranges, planned: 30) == false, "cut once")
        let rows = try await pg.query("SELECT shard, lower_bound, upper_bound FROM reach.campaign_shards WHERE campaign_id = 's-1' ORDER BY shard")
        #expect(rows.map { [$0[0], $0[1], $0[2]] } == [["0", "", "g"], ["1", "g", "p"], ["2", "p", nil]])
        let row = try #require(try await pg.query("SELECT shards, planned, owner FROM reach.campaigns WHERE id = 's-1'").first)
        #expect(row[0] == "3" && row[1] == "30" && row[2] == nil, "the campaign's own lease is handed back")
        #expect(try await campaigns.claimable().contains("s-1") == false, "open shards: the campaign's row is not claimable")
        #expect(try await campaigns.claim("s-1", owner: "b", lease: .seconds(10)) == nil)

        let all = try await shards.claimFree(owner: "a", lease: .seconds(30), limit: 10)
        #expect(Set(all.map(\.range.index)) == [0, 1, 2] && all.allSatisfy { $0.shards == 3 && $0.fence.epoch == 1 && !$0.takenOver })
        for s in all { #expect(try await shards.finish("s-1", fence: s.fence) != nil) }
        #expect(try await campaigns.claimable().contains("s-1"), "every shard done: claimable to end it")
        let end = try #require(try await campaigns.claim("s-1", owner: "b", lease: .seconds(10)))
        #expect(end.shards == 3)
    }

    @Test("two owners claiming at once get disjoint shards (SKIP LOCKED), all of them; a live lease is not taken; `excluding` skips one's own")
    func claimFree() async throws {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 4)
        let shards = CampaignShardStore(client: pg)
        let claim = try await claimedCampaign(pg, "s-2")
        #expect(try await shards.split("s-2", fence: claim.fence, ranges: ShardRange.ranges(bounds: (1..<16).map { String(format: "u%02d", $0) }),
                                       planned: 160))
        async let a = shards.claimFree(owner: "a", lease: .seconds(30), limit: 8)
        async let b = shards.claimFree(owner: "b", lease: .seconds(30), limit: 8)
        let (got, other) = try await (a, b)
        let ga = Set(got.map(\.range.index)), gb = Set(other.map(\.range.index))
        #expect(ga.isDisjoint(with: gb), "no shard claimed twice: \(ga.sorted()) / \(gb.sorted())")
        #expect(ga.count + gb.count == 16, "all claimed: \(ga.count) + \(gb.count)")
        #expect(try await shards.claimFree(owner: "c", lease: .seconds(30), limit: 8).isEmpty, "live leases are not taken")
        // a's lease on one shard lapses: a itself, still running it, excludes it; c takes it over.
        let lapsed = try #require(got.first)
        try await pg.query("UPDATE reach.campaign_shards SET lease_until = now() - interval '1 second' WHERE campaign_id = 's-2' AND shard = $1",
                           [lapsed.range.index])
        #expect(try await shards.claimFree(owner: "a", lease: .seconds(30), limit: 8, excluding: ["s-2#\(lapsed.range.index)"]).isEmpty)
        let c = try await shards.claimFree(owner: "c", lease: .seconds(30), limit: 8)
        #expect(c.map(\.range.index) == [lapsed.range.index] && c.first?.fence.epoch == 2 && c.first?.takenOver == true)
        let progress = try await shards.progress("s-2")
        #expect(progress.total == 16 && progress.done == 0 && progress.running == 16)
    }

    @Test("a shard's lease is fenced like a campaign's: after a takeover the old holder's renewal, page write, finish and Redis claim are refused; other shards' fences are their own")
    func fenced() async throws {
        let pg = PostgresClient(url: try await TestDatabase.migrated(), poolSize: 2)
        let shards = CampaignShardStore(client: pg), deliveries = DeliveryStore(client: pg)
        let claim = try await claimedCampaign(pg, "s-3")
        #expect(try await shards.split("s-3", fence: claim.fence, ranges: ShardRange.ranges(bounds: ["u5"]), planned: 10))
        let first = try await shards.claimFree(owner: "a", lease: .seconds(30), limit: 2)
        let a0 = try #require(first.first { $0.range.index == 0 }), a1 = try #require(first.first { $0.range.index == 1 })
        #expect(a0.fence.shard == 0 && a0.fence.token == "a#1/0")

        // A page of shard 0 moves its checkpoint and counters, and the campaign's counters (not its checkpoint).
        let row = DeliveryStore.Row(userID: "u1", channel: "sms", status: .sent, attempts: 1, messageID: "m-1")
        try await deliveries.record(campaignID: "s-3", rows: [row], checkpoint: "u1", fence: a0.fence)
        let shard0 = try #require(try await pg.query("SELECT checkpoint, targeted, sent FROM reach.campaign_shards WHERE campaign_id = 's-3' AND shard = 0").first)
        #expect(shard0[0] == "u1" && shard0[1] == "1" && shard0[2] == "1")
        let status = try #require(try await CampaignStore(client: pg).status("s-3"))
        #expect(status.counters.targeted == 1 && status.counters.sent == 1 && status.checkpoint == nil)

        try await pg.query("UPDATE reach.campaign_shards SET lease_until = now() - interval '1 second' WHERE campaign_id = 's-3' AND shard = 0")
        let b0 = try #require(try await shards.claimFree(owner: "b", lease: .seconds(30), limit: 2).first)
        #expect(b0.range.index == 0 && b0.fence.epoch == 2 && b0.takenOver && b0.checkpoint == "u1", "resumed from its checkpoint")
        #expect(try await shards.heartbeat("s-3", fence: a0.fence, lease: .seconds(30)) == nil)
        await #expect(throws: FencedOut.self) {
            try await deliveries.record(campaignID: "s-3", rows: [DeliveryStore.Row(userID: "u2", channel: "sms", status: .sent, attempts: 1, messageID: "m-2")],
                                        checkpoint: "u2", fence: a0.fence)
        }
        #expect(try await shards.finish("s-3", fence: a0.fence) == nil)
        #expect(try await shards.heartbeat("s-3", fence: a1.fence, lease: .seconds(30)) == "running", "shard 1's lease is untouched")

        // Redis: one fence key per shard within each key scope.
        let redis = RedisClient(configuration: try RedisConfiguration(url: try TestEnvironment.redisURL()))
        let keys = IdempotencyStore(redis: redis, prefix: TestEnvironment.unique("shardfence") + ":")
        let scope = KeySpread.campaign(shards: 2).scope(campaignID: "s-3", userID: "u3")
        #expect(try await keys.claim([(scope, "u3")], owner: "a", fence: a0.fence) == [.claimed])
        #expect(try await keys.claim([(scope, "u3")], owner: "b", fence: b0.fence) == [.claimed])
        await #expect(throws: FencedOut.self) { _ = try await keys.claim([(scope, "u4")], owner: "a", fence: a0.fence) }
        #expect(try await keys.claim([(scope, "u9")], owner: "a", fence: a1.fence) == [.claimed], "epoch 1 of shard 1 is not older than shard 0's epoch 2")
        #expect(try await redis.send("EXISTS", keys.sentKey(scope: scope)).int == 0, "a claim writes no mark")
        #expect(try await redis.send("GET", keys.fenceKey(scope: scope, shard: 0)).string == "2")

        #expect(try await shards.finish("s-3", fence: b0.fence) == 1, "one shard still open")
        #expect(try await shards.finish("s-3", fence: a1.fence) == 0)
    }

    @Test("every segment shape cuts into ranges whose keyset pages cover each user exactly once", arguments: ["members", "rule", "user_ids"])
    func rangesCoverOnce(shape: String) async throws {
        let url = try await seededDatabase(count: 5_000)
        let pg = PostgresClient(url: url, poolSize: 2)
        let source = SegmentSource(client: pg)
        let segment: SegmentSource.Resolved
        var expected: Set<String>
        switch shape {
        case "members":
            segment = .members(segmentID: "all")
            expected = Set((1...5_000).map { String(format: "u%05d", $0) })
        case "rule":
            segment = .rule(try SegmentRule.parse(try JSONParser.parse(#"{"attr": "level", "op": "gte", "value": 2}"#), path: "rule"))
            expected = Set((1...5_000).filter { $0 % 5 >= 2 }.map { String(format: "u%05d", $0) })
        default:
            let ids = (1...5_000).filter { $0 % 2 == 1 }.map { String(format: "u%05d", $0) }
            segment = .userIDs(ids + ids.prefix(10))  // repeats are one user
            expected = Set(ids)
        }
        let cut = try await source.cut(segment, maxShards: 6, minimumPerShard: 400)
        #expect(cut.count == expected.count)
        #expect(cut.ranges.count >= 4 && cut.ranges.count <= 6, "\(cut.ranges.count) ranges")
        var seen: [String: Int] = [:]
        var sizes: [Int] = []
        for range in cut.ranges {
            var after: String? = range.lower
            var size = 0
            while true {
                let page = try await source.page(segment, after: after, upTo: range.upper, limit: 97)
                guard let last = page.last else { break }
                for r in page { seen[r.userID, default: 0] += 1 }
                size += page.count
                after = last.userID
            }
            sizes.append(size)
        }
        #expect(Set(seen.keys) == expected && seen.values.allSatisfy { $0 == 1 }, "each user in exactly one range")
        let biggest = sizes.max() ?? 0, smallest = sizes.min() ?? 0
        print("shards: \(shape) cut into \(sizes.count) ranges of \(sizes)")
        #expect(smallest > 0 && biggest <= smallest * 3, "ranges roughly even (sampled bounds): \(sizes)")
    }

    /// Shared buffers (hit + read) the page query touched, from EXPLAIN (ANALYZE, BUFFERS).
    func buffers(_ pg: PostgresClient, _ segment: SegmentSource.Resolved, after: String, upTo: String?) async throws -> (Int, Double, String) {
        let (sql, parameters) = SegmentSource.pageQuery(segment, after: after, upTo: upTo, limit: 5_000)
        let json = try #require(try await pg.query("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, parameters).first?[0])
        let plan = try #require(try JSONParser.parse(json).array?.first)
        let root = try #require(plan["Plan"])
        let blocks = (root["Shared Hit Blocks"]?.number ?? 0) + (root["Shared Read Blocks"]?.number ?? 0)
        let text = try await pg.query("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, parameters)
            .compactMap { $0[0] }.joined(separator: "\n")
        return (Int(blocks), plan["Execution Time"]?.number ?? 0, text)
    }

    @Test("EXPLAIN on 1 000 000 recipients: a 5 000-user page of a shard costs the same at the first shard's start and at the last shard's end (members and rule segments)")
    func pageCostFlat() async throws {
        let url = try await TestDatabase.migrated()
        let pg = PostgresClient(url: url, poolSize: 1)
        // Seeding a million rows takes longer than a query's default time limit on a loaded machine.
        try await pg.withConnection { conn in
            for sql in [
                """
                INSERT INTO reach.recipients (user_id, attrs)
                SELECT 'u' || lpad(i::text, 7, '0'), jsonb_build_object('level', i % 5) FROM generate_series(1, 1000000) AS i
                """,
                "INSERT INTO reach.segments (id, name) VALUES ('all', 'everyone')",
                "INSERT INTO reach.segment_members SELECT 'all', user_id FROM reach.recipients",
                "VACUUM ANALYZE reach.recipients", "VACUUM ANALYZE reach.segment_members",
            ] { try await conn.query(sql, timeout: .seconds(600)) }
        }
        let source = SegmentSource(client: pg)
        let rule = SegmentSource.Resolved.rule(try SegmentRule.parse(try JSONParser.parse(#"{"attr": "level", "op": "gte", "value": 1}"#), path: "rule"))
        for segment in [SegmentSource.Resolved.members(segmentID: "all"), rule] {
            let cut = try await source.cut(segment, maxShards: 8, minimumPerShard: 50_000)
            #expect(cut.ranges.count == 8, "1 000 000 users (or 800 000 by the rule) in 8 shards")
            let first = try #require(cut.ranges.first), last = try #require(cut.ranges.last)
            // The last page of the last shard: 5 000 users before the segment's end.
            let nearEnd = "u" + String(format: "%07d", 995_000)
            let samples = [
                ("first shard, first page", try await buffers(pg, segment, after: first.lower, upTo: first.upper)),
                ("last shard, first page", try await buffers(pg, segment, after: last.lower, upTo: last.upper)),
                ("last shard, last page", try await buffers(pg, segment, after: nearEnd, upTo: last.upper)),
            ]
            let name = if case .rule = segment { "rule" } else { "members" }
            for (label, (blocks, ms, _)) in samples {
                print("shards: EXPLAIN \(name), \(label): \(blocks) shared buffers, \(String(format: "%.1f", ms)) ms")
            }
            print("shards: EXPLAIN \(name), last shard, last page:\n\(samples[2].1.2)")
            let counts = samples.map(\.1.0)
            #expect(counts.max()! <= counts.min()! * 2 + 20, "\(name): a page's buffers do not grow with its position: \(counts)")
        }
    }
}
