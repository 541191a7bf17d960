import ReachPostgres

/// Pause, resume and cancel: the one path both the Kafka control messages
/// (`TaskIntake`) and the operator API go through.
public struct CampaignControls: Sendable {
    let store: CampaignStore
    let wake: @Sendable () -> Void

    public init(store: CampaignStore, wake: @escaping @Sendable () -> Void) {
        self.store = store
        self.wake = wake
    }

    public enum Outcome: Sendable, Equatable {
        case applied(state: String)
        case unknown
        /// The campaign is in a state the control does not apply to.
        case refused(state: String)

        public var isRefusal: Bool { if case .refused = self { true } else { false } }
    }

    public func apply(_ id: String, _ control: CampaignStore.Control) async throws -> Outcome {
        if try await store.control(id, control) {
            // Runners read the state on their next lease renewal (≤ 500 ms); the wake makes idle ones look now.
            wake()
            return .applied(state: try await store.status(id)?.state ?? "")
        }
        guard let status = try await store.status(id) else { return .unknown }
        return .refused(state: status.state)
    }
}
