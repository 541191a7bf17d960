import ReachCore
import Synchronization

/// One circuit breaker per provider of each channel (a channel with one provider has one), shared
/// by every sender in the process. `reach_circuit_open{channel}` is 1 while every provider of the
/// channel is open (the channel cannot send), and `reach_provider_circuit_open{channel,provider}`
/// shows each provider's own.
public final class ChannelBreakers: Sendable {
    /// Per channel, its providers' breakers in the order they are tried.
    private let breakers: Mutex<[String: [(provider: String, breaker: CircuitBreaker)]]>
    private let metrics: PipelineMetrics

    /// One breaker per provider in each channel's routes, with the channel policy's settings.
    public init(registry: ChannelRegistry, metrics: PipelineMetrics) {
        var all: [String: [(provider: String, breaker: CircuitBreaker)]] = [:]
        for (name, policy) in registry.policies {
            let names = registry.routes[name]?.map(\.name) ?? [name]
            all[name] = names.map { ($0, policy.breaker.make()) }
            metrics.circuitOpen(channel: name, false)
            if names.count > 1 { for p in names { metrics.providerCircuitOpen(channel: name, provider: p, false) } }
        }
        self.breakers = Mutex(all)
        self.metrics = metrics
    }

    /// What this instance's breaker for `channel` says now: `closed`, `open` or `half_open` (nil
    /// for an unknown channel). With several providers: the first one's state that is not open,
    /// or `open` when all are. Breakers are per process.
    public func state(_ channel: String) -> String? {
        let now = ContinuousClock.now
        return breakers.withLock { all -> String? in
            guard let list = all[channel] else { return nil }
            let states = list.map { entry -> String in
                switch entry.breaker.state {
                case .closed: return "closed"
                case .halfOpen: return "half_open"
                case .open(let until): return until > now ? "open" : "half_open"
                }
            }
            return states.first { $0 != "open" } ?? "open"
        }
    }

    public enum Gate: Sendable, Equatable {
        /// Send through the provider at this position of the channel's routes.
        case go(provider: Int)
        /// A half-open probe: if it fails, its messages are deferred, not charged an attempt.
        case probe(provider: Int, coolDown: Duration)
        /// Every provider's breaker is open: the earliest may be tried after this.
        case wait(Duration)

        public var provider: Int? {
            switch self {
            case .go(let p), .probe(let p, _): p
            case .wait: nil
            }
        }
    }

    /// The first provider, in order, whose breaker lets a request through now.
    public func gate(_ channel: String) -> Gate {
        let now = ContinuousClock.now
        return breakers.withLock { all -> Gate in
            guard var list = all[channel] else { return .go(provider: 0) }
            defer { all[channel] = list }
            var earliest: ContinuousClock.Instant?
            for i in list.indices {
                let (allowed, retryAt) = list[i].breaker.allow(now: now)
                if allowed {
                    return list[i].breaker.state == .halfOpen ? .probe(provider: i, coolDown: list[i].breaker.coolDown) : .go(provider: i)
                }
                if let retryAt { earliest = min(earliest ?? retryAt, retryAt) }
            }
            return .wait(max(.milliseconds(10), (earliest ?? now + .seconds(1)) - now))
        }
    }

    /// A provider call that answered (sent or refused a message on its merits)
    /// is a success; time-outs, connection errors, 429 and 5xx are failures.
    public func record(_ channel: String, provider: Int = 0, success: Bool) {
        let states = breakers.withLock { all -> (provider: String, open: Bool, allOpen: Bool, several: Bool)? in
            guard var list = all[channel], list.indices.contains(provider) else { return nil }
            list[provider].breaker.record(success: success, now: .now)
            all[channel] = list
            return (list[provider].provider, list[provider].breaker.isOpen, list.allSatisfy(\.breaker.isOpen), list.count > 1)
        }
        guard let states else { return }
        metrics.circuitOpen(channel: channel, states.allOpen)
        if states.several { metrics.providerCircuitOpen(channel: channel, provider: states.provider, states.open) }
    }
}
