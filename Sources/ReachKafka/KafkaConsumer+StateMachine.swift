extension KafkaConsumer {
    /// A consumer's life: running → closing (leaving the group on the poll
    /// queue) → closed. The consumer keeps one under its lock; each transition
    /// says what to do, so no other code checks whether the consumer is closed.
    /// `Waiter` is what waits for the close (a continuation in the consumer,
    /// anything in a test).
    struct StateMachine<Waiter> {
        enum State {
            case running(waiters: [Waiter])
            case closing(waiters: [Waiter])
            case closed
        }

        enum Phase: Equatable { case running, closing, closed }

        enum PollAction: Equatable {
            /// Poll librdkafka.
            case poll
            /// End the sequence: the consumer is closing or closed.
            case finish
        }

        enum CloseAction: Equatable {
            /// Leave the group, then call `closeFinished`.
            case leaveGroup
            /// Another close is under way or done: nothing to do.
            case none
        }

        enum DeinitAction: Equatable {
            /// Never closed: leave the group before destroying the client.
            case leaveGroupAndDestroy
            case destroy
        }

        private(set) var state: State = .running(waiters: [])

        var phase: Phase {
            switch state {
            case .running: .running
            case .closing: .closing
            case .closed: .closed
            }
        }

        /// A poll is about to start.
        func poll() -> PollAction {
            if case .running = state { .poll } else { .finish }
        }

        /// `close` was called (or graceful shutdown asked for it).
        mutating func close() -> CloseAction {
            guard case .running(let waiters) = state else { return .none }
            state = .closing(waiters: waiters)
            return .leaveGroup
        }

        /// The client left the group: returns the waiters to wake.
        mutating func closeFinished() -> [Waiter] {
            switch state {
            case .running:
                preconditionFailure("closeFinished without close")
            case .closing(let waiters):
                state = .closed
                return waiters
            case .closed:
                return []
            }
        }

        /// `waiter` wants to know when the consumer is closed: returned at once
        /// (wake it now) when it already is, kept for `closeFinished` otherwise.
        mutating func waitForClose(_ waiter: Waiter) -> Waiter? {
            switch state {
            case .running(var waiters):
                waiters.append(waiter)
                state = .running(waiters: waiters)
                return nil
            case .closing(var waiters):
                waiters.append(waiter)
                state = .closing(waiters: waiters)
                return nil
            case .closed:
                return waiter
            }
        }

        /// The consumer is being destroyed (no poll, close or wait can be under way).
        func deinitialize() -> DeinitAction {
            if case .running = state { .leaveGroupAndDestroy } else { .destroy }
        }
    }
}
