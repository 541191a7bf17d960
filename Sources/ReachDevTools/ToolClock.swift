import Foundation

/// Wall-clock stamps the tools take, as integers since the Unix epoch (the
/// same clocks as the daemon's own stamps, whose helper is internal to ReachService).
enum ToolClock {
    /// Milliseconds, rounded.
    static func ms() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// Microseconds, from the real-time clock.
    static func micros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}
