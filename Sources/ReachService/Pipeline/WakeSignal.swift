import AsyncAlgorithms

/// A nudge from one service to another ("a campaign arrived", "a campaign
/// finished") for a loop that otherwise runs at its own pace. Signals that
/// arrive while the loop is busy collapse into one pass; nothing polls.
public final class WakeSignal: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // The first pass of the loop runs at once.
        continuation.yield()
    }

    public func signal() { continuation.yield() }

    /// One element per pass: at once, then on every signal and at least every
    /// `interval`. For one consumer (the loop that owns the signal).
    public func passes(every interval: Duration) -> some AsyncSequence<Void, Never> & Sendable {
        merge(stream, AsyncTimerSequence(interval: interval, clock: .continuous).map { _ in () })
    }
}
