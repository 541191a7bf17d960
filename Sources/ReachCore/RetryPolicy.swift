/// What to do after a failed send (SPEC §6): retryable failures are tried again
/// with exponential backoff and full jitter, honouring the provider's
/// `Retry-After`, until `maxAttempts` (which counts the first attempt);
/// permanent failures and exhausted attempts are dead.
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var backoff: Backoff

    public init(maxAttempts: Int, base: Duration, max: Duration) {
        self.maxAttempts = Swift.max(1, maxAttempts)
        self.backoff = Backoff(base: base, max: max)
    }

    public enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case dead(reason: String)
    }

    /// `attempts`: how many attempts have been made, the failed one included.
    public func decide(attempts: Int, retryable: Bool, retryAfter: Duration?,
                       using generator: inout some RandomNumberGenerator) -> Decision {
        guard retryable else { return .dead(reason: "provider_rejected") }
        guard attempts < maxAttempts else { return .dead(reason: "retries_exhausted") }
        let delay = backoff.delay(afterAttempt: attempts, using: &generator)
        return .retry(after: Swift.max(delay, retryAfter ?? .zero))
    }

    public func decide(attempts: Int, retryable: Bool, retryAfter: Duration?) -> Decision {
        var generator = SystemRandomNumberGenerator()
        return decide(attempts: attempts, retryable: retryable, retryAfter: retryAfter, using: &generator)
    }
}
