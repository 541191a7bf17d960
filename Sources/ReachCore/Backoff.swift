/// Exponential backoff with "full jitter": the n-th delay is uniform in
/// `0 ... min(max, base * 2^(n-1))`. Pure: the random source is passed in.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var max: Duration

    public init(base: Duration, max: Duration) {
        precondition(base > .zero && max >= base, "backoff needs 0 < base <= max")
        self.base = base
        self.max = max
    }

    /// The upper bound of the delay before attempt `attempt + 1` (attempt counts from 1).
    public func ceiling(afterAttempt attempt: Int) -> Duration {
        let exponent = Swift.max(0, Swift.min(attempt - 1, 62))
        let baseNanos = base.nanoseconds
        let (scaled, overflow) = baseNanos.multipliedReportingOverflow(by: Int64(1) << exponent)
        let capped = overflow ? max.nanoseconds : Swift.min(scaled, max.nanoseconds)
        return .nanoseconds(capped)
    }

    /// A jittered delay before attempt `attempt + 1`.
    public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(afterAttempt: attempt).nanoseconds
        return .nanoseconds(Int64.random(in: 0...ceiling, using: &generator))
    }

    public func delay(afterAttempt attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (fromSeconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return fromSeconds &+ attoseconds / 1_000_000_000
    }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }

    public var seconds: Double { Double(nanoseconds) / 1e9 }
}
