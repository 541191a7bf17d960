import ReachCore

/// What became of one message handed to a provider.
public struct SendOutcome: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        case sent
        /// 429, 5xx, time-out, connection trouble: trying again may work.
        case retryable
        /// Any other refusal: trying again will not help.
        case permanent
        /// Not attempted: the channel's circuit breaker is open, or the channel
        /// is paused. Retry after `retryAfter` without counting an attempt.
        case deferred
    }

    public var status: Status
    public var providerRef: String?
    public var error: String?
    /// The provider's `Retry-After`, when it sent one.
    public var retryAfter: Duration?
    /// Which of the channel's providers answered (set by the pipeline; nil: none was called).
    public var provider: String?

    public static func sent(_ ref: String? = nil) -> SendOutcome { SendOutcome(status: .sent, providerRef: ref) }
    public static func retryable(_ error: String, after: Duration? = nil) -> SendOutcome {
        SendOutcome(status: .retryable, error: error, retryAfter: after)
    }
    public static func permanent(_ error: String) -> SendOutcome { SendOutcome(status: .permanent, error: error) }
    public static func deferred(after: Duration) -> SendOutcome {
        SendOutcome(status: .deferred, error: "circuit open", retryAfter: after)
    }
    /// Not attempted: the channel is paused cluster-wide. Deferred exactly like an open breaker.
    public static func paused(after: Duration) -> SendOutcome {
        SendOutcome(status: .deferred, error: pausedError, retryAfter: after)
    }
    public static let pausedError = "channel paused"
    /// A deferral because the channel is paused (not because its breaker is open).
    public var isPaused: Bool { status == .deferred && error == Self.pausedError }
}

/// A delivery channel: one strategy per provider kind. Adding a channel is one
/// new type conforming to this protocol plus a `provider:` name in the factory.
/// A channel only sends: batching, pacing and retries are the pipeline's,
/// from the channel's `ChannelPolicy`.
public protocol Channel: Sendable {
    var name: String { get }
    /// Sends a batch; returns one outcome per message, in order. Failures are
    /// outcomes, never thrown.
    func send(_ batch: [OutboundMessage]) async -> [SendOutcome]
    func shutdown() async
}

extension Channel {
    public func shutdown() async {}
}
