import Foundation
import ReachRedis
import Synchronization
import Testing
import TestSupport


func clock_gettime_ms() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Counts how often each id fired.
final class Fired: Sendable {
    let counts = Mutex<[String: Int]>([:])
    func add(_ items: [DelayQueue.Item]) { counts.withLock { c in for i in items { c[i.id, default: 0] += 1 } } }
    var total: Int { counts.withLock { $0.values.reduce(0, +) } }
}

@Suite("the Redis delay queue: leased claims, acks, shards")
struct DelayQueueTests {
    func queue(shards: Int = 4) throws -> DelayQueue {
        DelayQueue(redis: try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 4),
                   prefix: TestEnvironment.unique("dq") + ":", shards: shards)
    }

    /// Claims and acks until nothing is due; returns what it fired.
    func drain(_ q: DelayQueue, owner: String, into fired: Fired, until expected: Int, lease: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while fired.total < expected, ContinuousClock.now < deadline {
            var got = 0
            for shard in 0..<q.shards {
                let items = try await q.claim(shard: shard, nowMs: clock_gettime_ms(), limit: 1000, lease: lease, owner: owner)
                fired.add(items)
                try await q.ack(items)
                got += items.count
            }
            if got == 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    @Test("100 000 items due at once fire exactly once across two concurrent schedulers")
    func hundredThousandTwoSchedulers() async throws {
        let q = try queue()
        let due = clock_gettime_ms()
        let n = 100_000
        try await q.schedule((0..<n).map { ("item-\($0)", "payload-\($0)", due) })
        #expect(try await q.depth() == n)
        let fired = Fired()
        let started = ContinuousClock.now
        async let a: Void = drain(q, owner: "a", into: fired, until: n)
        async let b: Void = drain(q, owner: "b", into: fired, until: n)
        _ = try await (a, b)
        let seconds = (ContinuousClock.now - started).components.seconds
        let counts = fired.counts.withLock { $0 }
        #expect(counts.count == n, "every item fired")
        #expect(counts.values.allSatisfy { $0 == 1 }, "no item fired twice")
        #expect(try await q.depth() == 0)
        print("delay queue (debug build, two schedulers): \(n) items in ~\(seconds) s")
    }

    @Test("a scheduler killed between claim and ack loses nothing: its items fire elsewhere after the lease")
    func crashedClaimer() async throws {
        let q = try queue(shards: 2)
        let due = clock_gettime_ms()
        try await q.schedule((0..<500).map { ("job-\($0)", "p", due) })
        // "a" claims everything and dies before acknowledging. The clock is passed in,
        // so the lease's edge is exact whatever the machine's load.
        var abandoned: [DelayQueue.Item] = []
        for shard in 0..<2 {
            abandoned += try await q.claim(shard: shard, nowMs: due, limit: 1000, lease: .milliseconds(500), owner: "a")
        }
        #expect(abandoned.count == 500)
        // Before the lease runs out, nobody else gets them.
        for shard in 0..<2 {
            #expect(try await q.claim(shard: shard, nowMs: due + 499, limit: 1000, lease: .seconds(30), owner: "b").isEmpty)
        }
        let fired = Fired()
        for shard in 0..<2 {
            let items = try await q.claim(shard: shard, nowMs: due + 501, limit: 1000, lease: .seconds(30), owner: "b")
            fired.add(items)
            try await q.ack(items)
        }
        #expect(fired.total == 500 && fired.counts.withLock { $0.values.allSatisfy { $0 == 1 } })
        #expect(try await q.ack(abandoned) == 0, "the dead claimer's late ack changes nothing")
        #expect(try await q.depth() == 0)
    }

    @Test("items fire no earlier than due, payloads intact; rescheduling replaces an item, even one in flight")
    func dueTimesAndReschedule() async throws {
        let q = try queue(shards: 1)
        let now = clock_gettime_ms()
        try await q.schedule([("later", "L", now + 60_000), ("now", "N {\"json\": true}", now - 5), ("soon", "S", now + 300)])
        // The clock is passed in, so "due" is exact whatever the machine's load.
        let first = try await q.claim(shard: 0, nowMs: now, limit: 10, lease: .seconds(30), owner: "x")
        #expect(first.map(\.id) == ["now"] && first.first?.payload == "N {\"json\": true}")
        #expect(try await q.claim(shard: 0, nowMs: now + 299, limit: 10, lease: .seconds(30), owner: "x").isEmpty)
        let second = try await q.claim(shard: 0, nowMs: now + 300, limit: 10, lease: .seconds(30), owner: "x")
        #expect(second.map(\.id) == ["soon"])
        // The handler of "soon" reschedules it (a retry): its own ack must not delete the retry.
        try await q.schedule(id: "soon", payload: "S2", dueMs: now + 400)
        #expect(try await q.ack(second) == 0)
        let retry = try await q.claim(shard: 0, nowMs: now + 400, limit: 10, lease: .seconds(30), owner: "x")
        #expect(retry.map(\.payload) == ["S2"])
        try await q.ack(first + retry)
        #expect(try await q.depth() == 1, "only 'later' is left")
        #expect(try await q.nextDue(shard: 0) == now + 60_000)
    }

    @Test("a lease extended while its items are worked on keeps them; one that is not runs out; a stale claim extends nothing")
    func extendLease() async throws {
        let q = try queue(shards: 1)
        let now = clock_gettime_ms()
        try await q.schedule([("kept", "{}", now - 1), ("lapsed", "{}", now - 1)])
        let items = try await q.claim(shard: 0, nowMs: now, limit: 10, lease: .milliseconds(500), owner: "a")
        #expect(Set(items.map(\.id)) == ["kept", "lapsed"])
        let kept = items.filter { $0.id == "kept" }
        // Two renewals on the worker's own clock, past the first lease's end.
        for step in 1...2 {
            #expect(try await q.extend(kept, nowMs: now + 400 * Int64(step), lease: .milliseconds(500)) == 1)
        }
        // At now + 900 the unextended item is due again, the extended one is not (held until now + 1 300).
        let again = try await q.claim(shard: 0, nowMs: now + 900, limit: 10, lease: .seconds(30), owner: "b")
        #expect(again.map(\.id) == ["lapsed"])
        // The first claim of "lapsed" is stale now: extending it changes nothing.
        #expect(try await q.extend(items.filter { $0.id == "lapsed" }, nowMs: now + 900, lease: .seconds(60)) == 0)
        #expect(try await q.ack(again) == 1)
        #expect(try await q.ack(kept) == 1, "the worker that kept extending still holds its item")
    }

    @Test("scheduleMissing (the stale-row sweep) adds only ids that are neither waiting nor in flight; a queued item keeps its payload and due time")
    func scheduleMissing() async throws {
        let q = try queue(shards: 1)
        let now = clock_gettime_ms()
        try await q.schedule(id: "waiting", payload: "with context", dueMs: now + 3_600_000)
        try await q.schedule(id: "claimed", payload: "in flight", dueMs: now)
        let claimed = try await q.claim(shard: 0, nowMs: now, limit: 10, lease: .seconds(30), owner: "a")
        #expect(claimed.map(\.id) == ["claimed"])

        let added = try await q.scheduleMissing([("waiting", "swept", now), ("claimed", "swept", now), ("lost", "swept", now)])
        #expect(added == 1, "only the lost one")
        let due = try await q.claim(shard: 0, nowMs: now + 1, limit: 10, lease: .seconds(30), owner: "b")
        #expect(due.map(\.id) == ["lost"], "the waiting item was not made due now, the claimed one not released")
        #expect(try await q.ack(claimed) == 1, "the first claim still holds its item")
        #expect(try await q.ack(due) == 1)
        let later = try await q.claim(shard: 0, nowMs: now + 3_600_001, limit: 10, lease: .seconds(30), owner: "c")
        #expect(later.map(\.payload) == ["with context"], "the waiting item kept its payload")
    }
}
