import ReachCore
import Synchronization

/// One circuit breaker per channel, shared by every sender in the process,
/// with its state exported as `reach_circuit_open{channel}`.
public final class ChannelBreakers: Sendable {
    private let breakers: Mutex<[String: CircuitBreaker]>
    private let metrics: PipelineMetrics

    public init(policies: [String: ChannelPolicy], metrics: PipelineMetrics) {
        var all: [String: CircuitBreaker] = [:]
        for (name, policy) in policies {
            all[name] = policy.breaker.make()
            metrics.circuitOpen(channel: name, false)
        }
        self.breakers = Mutex(all)
        self.metrics = metrics
    }

    /// What this instance's breaker for `channel` says now: `closed`, `open`
    /// or `half_open` (nil for an unknown channel). Breakers are per process.
    public func state(_ channel: String) -> String? {
        let now = ContinuousClock.now
        return breakers.withLock { all -> String? in
            guard let breaker = all[channel] else { return nil }
            switch breaker.state {
            case .closed: return "closed"
            case .halfOpen: return "half_open"
            case .open(let until): return until > now ? "open" : "half_open"
            }
        }
    }

    public enum Gate: Sendable, Equatable {
        case go
        /// A half-open probe: if it fails, its messages are deferred, not charged an attempt.
        case probe(coolDown: Duration)
        case wait(Duration)
    }

    public func gate(_ channel: String) -> Gate {
        let now = ContinuousClock.now
        let (allowed, retryAt, probing, coolDown) = breakers.withLock { all -> (Bool, ContinuousClock.Instant?, Bool, Duration) in
            guard var breaker = all[channel] else { return (true, nil, false, .zero) }
            defer { all[channel] = breaker }
            let (allowed, retryAt) = breaker.allow(now: now)
            return (allowed, retryAt, breaker.state == .halfOpen, breaker.coolDown)
        }
        if allowed { return probing ? .probe(coolDown: coolDown) : .go }
        return .wait(max(.milliseconds(10), (retryAt ?? now + .seconds(1)) - now))
    }

    /// A provider call that answered (sent or refused a message on its merits)
    /// is a success; time-outs, connection errors, 429 and 5xx are failures.
    public func record(_ channel: String, success: Bool) {
        let open = breakers.withLock { all -> Bool? in
            guard var breaker = all[channel] else { return nil }
            breaker.record(success: success, now: .now)
            all[channel] = breaker
            return breaker.isOpen
        }
        if let open { metrics.circuitOpen(channel: channel, open) }
    }
}
