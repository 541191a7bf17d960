/// A per-channel circuit breaker (pure; the caller passes the clock).
///
/// Closed: calls pass and their outcomes fill a sliding window. When at least
/// `minimumCalls` outcomes in the window show a failure rate of
/// `failureRate` or more, it opens for `coolDown`. Open: calls are refused
/// (the caller defers them). After the cool-down it is half-open: up to
/// `probes` calls pass; one success closes it, one failure opens it again.
public struct CircuitBreaker: Sendable {
    public enum State: Sendable, Equatable {
        case closed
        case open(until: ContinuousClock.Instant)
        case halfOpen
    }

    public let failureRate: Double
    public let window: Duration
    public let minimumCalls: Int
    public let coolDown: Duration
    public let probes: Int
    public private(set) var state: State = .closed
    /// Outcomes in the window from `head` on, and how many of them failed:
    /// recording is O(1) amortised however many calls the window holds.
    private var outcomes: [(at: ContinuousClock.Instant, ok: Bool)] = []
    private var head = 0
    private var failures = 0
    private var probesInFlight = 0

    public init(failureRate: Double, window: Duration, minimumCalls: Int, coolDown: Duration, probes: Int = 1) {
        self.failureRate = failureRate
        self.window = window
        self.minimumCalls = max(1, minimumCalls)
        self.coolDown = coolDown
        self.probes = max(1, probes)
    }

    public var isOpen: Bool {
        if case .closed = state { return false }
        return true
    }

    /// Whether a call may go now. While open, `retryAt` says when to try again.
    public mutating func allow(now: ContinuousClock.Instant) -> (allowed: Bool, retryAt: ContinuousClock.Instant?) {
        switch state {
        case .closed:
            return (true, nil)
        case .open(let until):
            guard now >= until else { return (false, until) }
            state = .halfOpen
            probesInFlight = 1
            return (true, nil)
        case .halfOpen:
            guard probesInFlight < probes else { return (false, now + coolDown / 10) }
            probesInFlight += 1
            return (true, nil)
        }
    }

    public mutating func record(success: Bool, now: ContinuousClock.Instant) {
        switch state {
        case .halfOpen:
            probesInFlight = max(0, probesInFlight - 1)
            if success {
                state = .closed
                clearWindow()
            } else {
                state = .open(until: now + coolDown)
            }
        case .open:
            // A call let through before the breaker opened; it changes nothing.
            break
        case .closed:
            outcomes.append((now, success))
            if !success { failures += 1 }
            let horizon = now - window
            while head < outcomes.count, outcomes[head].at < horizon {
                if !outcomes[head].ok { failures -= 1 }
                head += 1
            }
            if head > 1_024, head * 2 > outcomes.count {
                outcomes.removeFirst(head)
                head = 0
            }
            let calls = outcomes.count - head
            if calls >= minimumCalls, Double(failures) / Double(calls) >= failureRate {
                state = .open(until: now + coolDown)
                clearWindow()
            }
        }
    }

    private mutating func clearWindow() {
        outcomes.removeAll()
        head = 0
        failures = 0
    }
}
