import ReachCore
import Testing

@Suite("campaign shards: how many, where the ranges are cut, where the keys live")
struct CampaignShardsTests {
    @Test("a campaign is cut only into shards of at least the minimum, and never into more than the maximum")
    func count() {
        #expect(ShardPlan.count(recipients: 1_000, maxShards: 8, minimumPerShard: 50_000) == 1, "a 1 000-user campaign is not cut")
        #expect(ShardPlan.count(recipients: 99_999, maxShards: 8, minimumPerShard: 50_000) == 1)
        #expect(ShardPlan.count(recipients: 100_000, maxShards: 8, minimumPerShard: 50_000) == 2)
        #expect(ShardPlan.count(recipients: 1_000_000, maxShards: 8, minimumPerShard: 50_000) == 8)
        #expect(ShardPlan.count(recipients: 1_000_000, maxShards: 1, minimumPerShard: 1) == 1, "shards: 1 never cuts")
        #expect(ShardPlan.count(recipients: 0, maxShards: 8, minimumPerShard: 1) == 1)
    }

    @Test("bounds are the sample's quantiles, ascending, without repeats and never the last id")
    func bounds() {
        let sample = (1...100).map { String(format: "u%03d", $0) }
        #expect(ShardPlan.bounds(sortedSample: sample, count: 4) == ["u026", "u051", "u076"])
        #expect(ShardPlan.bounds(sortedSample: ["a", "a", "a", "b"], count: 4) == ["a"], "repeats collapse")
        #expect(ShardPlan.bounds(sortedSample: ["a"], count: 4) == [], "one id: no cut")
        #expect(ShardPlan.bounds(sortedSample: [], count: 4) == [])
        #expect(ShardPlan.bounds(sortedSample: sample, count: 1) == [])
    }

    @Test("ranges cover everything once: ('', b1], (b1, b2], …, (bn, end)")
    func ranges() {
        let ranges = ShardRange.ranges(bounds: ["g", "p"])
        #expect(ranges == [ShardRange(index: 0, lower: "", upper: "g"), ShardRange(index: 1, lower: "g", upper: "p"),
                           ShardRange(index: 2, lower: "p", upper: nil)])
        #expect(ShardRange.ranges(bounds: []) == [ShardRange(index: 0, lower: "", upper: nil)])
    }

    @Test("idempotency keys: one scope for an uncut campaign, a stable bucket per user for a cut one")
    func spread() {
        #expect(KeySpread.campaign(shards: 0).scope(campaignID: "c", userID: "u1") == "c")
        #expect(KeySpread.single.scope(campaignID: "c", userID: "u1") == "c")
        let spread = KeySpread.campaign(shards: 8)
        var buckets = Set<String>()
        for i in 0..<1_000 {
            let scope = spread.scope(campaignID: "big", userID: "u\(i)")
            #expect(scope == spread.scope(campaignID: "big", userID: "u\(i)"), "a pure function of the user")
            #expect(scope.hasPrefix("big#"))
            buckets.insert(scope)
        }
        #expect(buckets.count == 8, "users spread over every bucket: \(buckets.sorted())")
        // Fixed for ever: keys written by one release must be found by the next.
        #expect(spread.scope(campaignID: "big", userID: "u1") == "big#\(StableHash.fnv1a("u1") % 8)")
        #expect(StableHash.fnv1a("") == 0xcbf2_9ce4_8422_2325 && StableHash.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
    }

    @Test("a shard's run stops when its campaign failed elsewhere; a whole campaign's retries still go (replays of a done campaign)")
    func verdict() {
        func verdict(_ state: CampaignState, shard: Bool) -> SendVerdict {
            .campaign(stopping: false, leaseLost: false, leaseUsable: true, state: state, expiresAt: nil, now: .now, shard: shard)
        }
        #expect(verdict(.failed, shard: true) == .hold(.ended))
        #expect(verdict(.done, shard: true) == .hold(.ended))
        #expect(verdict(.running, shard: true) == .go)
        #expect(verdict(.done, shard: false) == .go)
        #expect(verdict(.paused, shard: true) == .hold(.paused))
        #expect(CampaignStep.next(.hold(.ended), takenOver: false) == .handBack(.ended))
    }
}
