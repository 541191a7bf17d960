import Foundation

/// Wall-clock times as integers since the Unix epoch: what the delay queue,
/// rate limits and frequency caps store, and what the benchmarks stamp.
enum Epoch {
    /// Milliseconds, rounded.
    static func ms(_ date: Date = Date()) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

    /// Microseconds, from the real-time clock.
    static func micros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
