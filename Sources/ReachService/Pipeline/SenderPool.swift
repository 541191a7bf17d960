import Synchronization

/// A channel's senders: `size` permits, handed out first to urgent waiters,
/// then in the order asked. Never cancelled (a batch that waits for a sender
/// asks its gate once it has one).
final class SenderPool: Sendable {
    private struct State {
        var free: Int
        var urgent: [CheckedContinuation<Void, Never>] = []
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(size: Int) { state = Mutex(State(free: max(1, size))) }

    func acquire(urgent: Bool = false) async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s in
                if s.free > 0 {
                    s.free -= 1
                    return true
                }
                if urgent { s.urgent.append(waiter) } else { s.waiting.append(waiter) }
                return false
            }
            if granted { waiter.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if !s.urgent.isEmpty { return s.urgent.removeFirst() }
            if !s.waiting.isEmpty { return s.waiting.removeFirst() }
            s.free += 1
            return nil
        }
        next?.resume()
    }
}
