/// A row's status in `reach.deliveries` (SPEC §2, §4.4); the string form lives at the table edge only.
public enum DeliveryStatus: String, Sendable, CaseIterable {
    /// Waiting: a retry, a deferral or a replay is queued for it.
    case scheduled
    case sent
    case skipped
    case dead
}

/// Why a user ended `skipped` (SPEC §2).
public enum SkipReason: String, Sendable, CaseIterable {
    case optedOut = "opted_out"
    case noAddress = "no_address"
    case frequencyCap = "frequency_cap"
    case expired
    case cancelled
    case duplicate
}

/// Why a row waits `scheduled`.
public enum WaitReason: String, Sendable, CaseIterable {
    /// A failed attempt, tried again after a backoff.
    case retry
    /// The channel's circuit breaker is open: deferred, no attempt spent.
    case circuitOpen = "circuit_open"
    /// The channel is switched off cluster-wide: deferred, no attempt spent.
    case channelPaused = "channel_paused"
    /// A dead letter put back in line.
    case replay
    /// Inside the user's quiet hours: deferred to the window's end, no attempt spent.
    case quietHours = "quiet_hours"
}

/// Why a row ended `dead`.
public enum DeadReason: String, Sendable, CaseIterable {
    /// A permanent provider answer (4xx other than 429).
    case providerRejected = "provider_rejected"
    case retriesExhausted = "retries_exhausted"
    /// A queued retry whose stored task no longer parses.
    case invalidTask = "invalid_task"
    /// A trigger send whose rule and event are known nowhere any more.
    case triggerContextLost = "trigger_context_lost"
}

/// A campaign's state in `reach.campaigns` (SPEC §4.4).
public enum CampaignState: String, Sendable, CaseIterable {
    case scheduled, running, paused, done, cancelled, failed

    /// No runner works on it again.
    public var isFinal: Bool { self == .done || self == .cancelled || self == .failed }
}

/// What a provider did with one message, as the pipeline's decision needs it
/// (the channel module's `SendOutcome` maps onto this).
public enum ProviderAnswer: Sendable, Equatable {
    case accepted(providerRef: String?)
    /// 429, 5xx, a time-out or a connection error.
    case retryable(retryAfter: Duration?)
    /// Any other 4xx.
    case rejected
    /// Not sent at all: the breaker was open or the channel paused.
    case deferred(WaitReason, retryAfter: Duration?)

    /// A provider call was made and failed (SPEC §8 `failed`); a deferral made no call.
    public var isFailedCall: Bool {
        switch self {
        case .retryable, .rejected: true
        case .accepted, .deferred: false
        }
    }
}

/// What one message's attempt becomes: the whole rule, in one pure function.
public enum DeliveryDecision: Sendable, Equatable {
    case sent(attempts: Int, providerRef: String?)
    /// The row waits `scheduled` with `reason`; the queue item is due `after` from now.
    case wait(WaitReason, after: Duration, attempts: Int)
    case dead(DeadReason, attempts: Int)

    /// `attempt`: the number of this attempt (1 for the first). A deferral is
    /// no attempt, so it keeps the count of the attempts made before it.
    /// `policy` is read only for a retryable answer (the pipeline decides every
    /// message of a page, nearly all accepted: no lookup of the channel's policy for them).
    public static func decide(_ answer: ProviderAnswer, attempt: Int, policy: @autoclosure () -> RetryPolicy,
                              using generator: inout some RandomNumberGenerator) -> DeliveryDecision {
        switch answer {
        case .accepted(let ref):
            return .sent(attempts: attempt, providerRef: ref)
        case .deferred(let reason, let retryAfter):
            return .wait(reason, after: retryAfter ?? .seconds(1), attempts: attempt - 1)
        case .retryable(let retryAfter):
            switch policy().decide(attempts: attempt, retryable: true, retryAfter: retryAfter, using: &generator) {
            case .retry(let after): return .wait(.retry, after: after, attempts: attempt)
            case .dead: return .dead(.retriesExhausted, attempts: attempt)
            }
        case .rejected:
            return .dead(.providerRejected, attempts: attempt)
        }
    }

    public static func decide(_ answer: ProviderAnswer, attempt: Int, policy: @autoclosure () -> RetryPolicy) -> DeliveryDecision {
        var generator = SystemRandomNumberGenerator()
        return decide(answer, attempt: attempt, policy: policy(), using: &generator)
    }

    /// The row's status.
    public var status: DeliveryStatus {
        switch self {
        case .sent: .sent
        case .wait: .scheduled
        case .dead: .dead
        }
    }
}
