import Synchronization

/// A nudge from one service to another ("a campaign arrived"), checked by a
/// loop that would otherwise poll at its own pace.
public final class WakeSignal: Sendable {
    private let pending = Atomic<Bool>(false)

    public init() {}

    public func signal() { pending.store(true, ordering: .releasing) }

    /// Returns when signalled, or after `timeout`, or on cancellation.
    public func wait(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if pending.exchange(false, ordering: .acquiringAndReleasing) { return }
            try? await Task.sleep(for: .milliseconds(25))
        }
    }
}
