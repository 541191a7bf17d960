import Foundation

/// Whether the next provider request of a run may go out (asked before every
/// request), and if not, why: the one rule behind pause "within 2 s", cancel,
/// expiry, a lapsing lease and shutdown.
public enum SendVerdict: Sendable, Equatable {
    case go
    case hold(Hold)

    public enum Hold: Sendable, Equatable {
        case paused, cancelled, expired, leaseLost, shuttingDown

        /// The `skipped` reason for users held back for good; nil: they stay unsent (no row), to be sent later.
        public var skipReason: SkipReason? {
            switch self {
            case .cancelled: .cancelled
            case .expired: .expired
            case .paused, .leaseLost, .shuttingDown: nil
            }
        }
    }

    /// A campaign run's verdict. Shutdown comes first, then the lease (a
    /// runner that cannot prove it still holds the campaign sends nothing),
    /// then what operators asked (pause, cancel), then the task's expiry.
    public static func campaign(stopping: Bool, leaseLost: Bool, leaseUsable: Bool, state: CampaignState?,
                                expiresAt: Date?, now: Date) -> SendVerdict {
        if stopping { return .hold(.shuttingDown) }
        if leaseLost || !leaseUsable { return .hold(.leaseLost) }
        switch state {
        case .paused?: return .hold(.paused)
        case .cancelled?: return .hold(.cancelled)
        default: break
        }
        if let expiresAt, now >= expiresAt { return .hold(.expired) }
        return .go
    }
}
