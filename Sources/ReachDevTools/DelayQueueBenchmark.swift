import Foundation
import ReachRedis
import Synchronization

/// Measures the delay queue: `items` sends due in the same millisecond, fired
/// by `schedulers` concurrent schedulers (each with its own connections, as
/// separate instances would be). Reports the fire rate and the lateness of
/// each item (fire time − due time).
public struct DelayQueueBenchmark: Sendable {
    public struct Report: Sendable, CustomStringConvertible {
        var items: Int
        var scheduleSeconds: Double
        var allFiredAfterDueSeconds: Double
        var firePerSecond: Double
        var latenessP50Ms: Double
        var latenessP99Ms: Double
        var latenessMaxMs: Double
        var firedTwice: Int

        public var description: String {
            String(format: """
                delay queue: %d items due at once, scheduled in %.2f s
                  all fired %.2f s after the due time: %.0f items/s
                  lateness p50 %.0f ms, p99 %.0f ms, max %.0f ms; fired twice: %d
                """, items, scheduleSeconds, allFiredAfterDueSeconds, firePerSecond, latenessP50Ms, latenessP99Ms, latenessMaxMs, firedTwice)
        }
    }

    let redisURL: String
    let items: Int
    let schedulers: Int
    let shards: Int

    public init(redisURL: String, items: Int = 100_000, schedulers: Int = 2, shards: Int = 4) {
        self.redisURL = redisURL
        self.items = items
        self.schedulers = schedulers
        self.shards = shards
    }


    public func run() async throws -> Report {
        let prefix = "reach-bench-\(UInt32.random(in: 0...UInt32.max)):"
        let setup = DelayQueue(redis: try RedisClient(url: redisURL, poolSize: 4), prefix: prefix, shards: shards)
        // Due far enough ahead that scheduling finishes first.
        let lead = Int64(2_000 + items / 100)
        let due = ToolClock.ms() + lead
        let started = Date()
        for chunk in stride(from: 0, to: items, by: 10_000) {
            try await setup.schedule((chunk..<min(chunk + 10_000, items)).map { ("b\($0)", "{\"kind\":\"bench\"}", due) })
        }
        let scheduleSeconds = Date().timeIntervalSince(started)
        let tally = Tally()
        let (redisURL, items, shards) = (self.redisURL, self.items, self.shards)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for s in 0..<schedulers {
                group.addTask {
                    let queue = DelayQueue(redis: try RedisClient(url: redisURL, poolSize: 2), prefix: prefix, shards: shards)
                    var idle = 0
                    while tally.count < items {
                        var got = 0
                        for shard in 0..<shards {
                            let claimed = try await queue.claim(shard: (shard + s) % shards, nowMs: ToolClock.ms(), limit: 1_000,
                                                                lease: .seconds(30), owner: "bench-\(s)")
                            guard !claimed.isEmpty else { continue }
                            tally.fired(claimed.map(\.id), lateness: ToolClock.ms() - due)
                            try await queue.ack(claimed)
                            got += claimed.count
                        }
                        if got == 0 {
                            idle += 1
                            if idle > 30_000 { break }
                            try await Task.sleep(for: .milliseconds(1))
                        } else {
                            idle = 0
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let sorted = tally.lateness.sorted()
        func pct(_ p: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) }
        let last = Double(sorted.last ?? 0) / 1000
        return Report(items: items, scheduleSeconds: scheduleSeconds, allFiredAfterDueSeconds: last,
                      firePerSecond: Double(items) / max(last, 0.001), latenessP50Ms: pct(0.5), latenessP99Ms: pct(0.99),
                      latenessMaxMs: Double(sorted.last ?? 0), firedTwice: tally.twice)
    }
}

/// What the benchmark's schedulers fired, shared between them.
final class Tally: Sendable {
    private let state = Mutex<(lateness: [Int64], seen: Set<String>, twice: Int)>(([], [], 0))
    var count: Int { state.withLock { $0.lateness.count } }
    var lateness: [Int64] { state.withLock { $0.lateness } }
    var twice: Int { state.withLock { $0.twice } }

    func fired(_ ids: [String], lateness: Int64) {
        state.withLock { s in
            s.lateness += Array(repeating: lateness, count: ids.count)
            for id in ids where !s.seen.insert(id).inserted { s.twice += 1 }
        }
    }
}
