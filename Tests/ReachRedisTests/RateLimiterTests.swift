import Foundation
import ReachRedis
import Synchronization
import Testing
import TestSupport

final class Stamps: Sendable {
    private let values = Mutex<[Int64]>([])
    func add(_ t: Int64, count: Int) { values.withLock { $0 += Array(repeating: t, count: count) } }
    var all: [Int64] { values.withLock { $0 } }
}

@Suite("cluster-wide rate limits and per-user frequency caps in Redis")
struct RateLimiterTests {
    /// One "instance": its own connections, as a second process would have.
    static func instance(prefix: String, rate: Int, stamps: Stamps) async throws {
        let limiter = RateLimiter(redis: try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1), prefix: prefix)
        let end = ContinuousClock.now + .seconds(7)
        while ContinuousClock.now < end {
            let wait = try await limiter.acquire("sms", count: 100, ratePerSecond: rate, nowMs: clock_gettime_ms())
            if wait > .zero { try await Task.sleep(for: wait) }
            stamps.add(clock_gettime_ms(), count: 100)
        }
    }

    @Test("tokens a held batch gives back shorten the next batch's wait, and never lift the bucket above its burst")
    func refund() async throws {
        let limiter = RateLimiter(redis: try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1), prefix: TestEnvironment.unique("rl") + ":")
        let now = clock_gettime_ms()
        // 1 000/s, burst 200: 200 + 1 000 tokens taken at once leave 1 s of debt.
        #expect(try await limiter.acquire("push", count: 1_200, ratePerSecond: 1_000, nowMs: now) == .milliseconds(1_000))
        try await limiter.refund("push", count: 1_000, ratePerSecond: 1_000)
        // The refund cleared the debt: the next 100 tokens wait 0.1 s, not 1.1 s.
        #expect(try await limiter.acquire("push", count: 100, ratePerSecond: 1_000, nowMs: now) == .milliseconds(100))
        try await limiter.refund("push", count: 10_000, ratePerSecond: 1_000)
        // Capped at the burst (200): 300 tokens leave 0.1 s of debt.
        #expect(try await limiter.acquire("push", count: 300, ratePerSecond: 1_000, nowMs: now) == .milliseconds(100))
    }

    @Test("two instances sharing one limit never exceed it by more than 10% over any 5 s window")
    func twoInstances() async throws {
        let prefix = TestEnvironment.unique("rl") + ":"
        let rate = 2_000
        let stamps = Stamps()
        async let a: Void = Self.instance(prefix: prefix, rate: rate, stamps: stamps)
        async let b: Void = Self.instance(prefix: prefix, rate: rate, stamps: stamps)
        _ = try await (a, b)
        let all = stamps.all.sorted()
        let first = all.first!, last = all.last!
        var worst = 0
        var start = first
        while start + 5_000 <= last {
            let count = all.filter { $0 >= start && $0 < start + 5_000 }.count
            worst = max(worst, count)
            start += 250
        }
        #expect(worst <= rate * 5 * 11 / 10, "\(worst) in a 5 s window; limit \(rate)/s")
        #expect(worst >= rate * 5 * 8 / 10, "the limiter should not starve the senders: \(worst)")
    }

    @Test("a user gets at most N messages a day overall and per channel; a retry of a counted message passes")
    func frequencyCap() async throws {
        let cap = FrequencyCap(redis: try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1), prefix: TestEnvironment.unique("fc") + ":")
        let now = clock_gettime_ms()
        let sends = (0..<5).map { ("u1", $0 < 3 ? "sms" : "push", "m\($0)") }
        let admitted = try await cap.admit(sends, maxOverall: 4, maxPerChannel: ["sms": 2], nowMs: now)
        #expect(admitted == [true, true, false, true, true], "sms capped at 2; overall at 4")
        #expect(try await cap.admit([("u1", "push", "m9")], maxOverall: 4, maxPerChannel: [:], nowMs: now) == [false])
        #expect(try await cap.admit([("u1", "sms", "m0")], maxOverall: 4, maxPerChannel: ["sms": 2], nowMs: now) == [true], "retry of m0")
        #expect(try await cap.admit([("u2", "sms", "m0")], maxOverall: 4, maxPerChannel: ["sms": 2], nowMs: now) == [true], "other users are apart")
        // A day later the window has rolled.
        #expect(try await cap.admit([("u1", "push", "m10")], maxOverall: 4, maxPerChannel: [:], nowMs: now + 86_400_001) == [true])
        // Released counts (dead messages) free the slot.
        try await cap.release([("u1", "push", "m10")])
        #expect(try await cap.admit([("u1", "sms", "m11"), ("u1", "sms", "m12")], maxOverall: 4, maxPerChannel: ["sms": 2], nowMs: now + 86_400_002) == [true, true])
    }
}
