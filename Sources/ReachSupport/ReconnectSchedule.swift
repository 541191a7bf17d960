import ReachCore

/// When a broken connection may be opened again: after each failed attempt the
/// next one waits a jittered, doubling delay (capped), so a server that is down
/// is not hammered; a success resets it.
public struct ReconnectSchedule: Sendable {
    private let backoff: Backoff
    public private(set) var consecutiveFailures = 0
    private var retryAt: ContinuousClock.Instant?

    public init(base: Duration, max: Duration) {
        self.backoff = Backoff(base: base, max: max)
    }

    /// Whether an attempt may be made now.
    public var mayAttempt: Bool {
        guard let retryAt else { return true }
        return ContinuousClock.now >= retryAt
    }

    public mutating func failed() {
        consecutiveFailures += 1
        retryAt = ContinuousClock.now + backoff.delay(afterAttempt: consecutiveFailures)
    }

    public mutating func succeeded() {
        consecutiveFailures = 0
        retryAt = nil
    }
}
