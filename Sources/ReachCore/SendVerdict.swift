import Foundation

/// Whether the next provider request of a run may go out (asked before every
/// request), and if not, why: the one rule behind pause "within 2 s", cancel,
/// expiry, a lapsing lease and shutdown.
public enum SendVerdict: Sendable, Equatable {
    case go
    case hold(Hold)

    public enum Hold: Sendable, Equatable {
        case paused, cancelled, expired, leaseLost, shuttingDown
        /// The campaign ended while this run held a part of it (another shard
        /// failed it): stop and hand the part back, its users stay unsent.
        case ended

        /// The `skipped` reason for users held back for good; nil: they stay unsent (no row), to be sent later.
        public var skipReason: SkipReason? {
            switch self {
            case .cancelled: .cancelled
            case .expired: .expired
            case .paused, .leaseLost, .shuttingDown, .ended: nil
            }
        }
    }

    /// A campaign run's verdict. Shutdown comes first, then the lease (a
    /// runner that cannot prove it still holds the campaign sends nothing),
    /// then what operators asked (pause, cancel), then the task's expiry.
    /// A `shard`'s run (one part of a campaign cut into shards) also stops
    /// when its campaign ended meanwhile: another shard's run failed it.
    public static func campaign(stopping: Bool, leaseLost: Bool, leaseUsable: Bool, state: CampaignState?,
                                expiresAt: Date?, now: Date, shard: Bool = false) -> SendVerdict {
        if stopping { return .hold(.shuttingDown) }
        if leaseLost || !leaseUsable { return .hold(.leaseLost) }
        switch state {
        case .paused?: return .hold(.paused)
        case .cancelled?: return .hold(.cancelled)
        case .failed?, .done?: if shard { return .hold(.ended) }
        default: break
        }
        if let expiresAt, now >= expiresAt { return .hold(.expired) }
        return .go
    }
}
