/// Picks a user's channel from the campaign's weights, deterministically: the
/// choice is a function of `(campaign_id, user_id)` alone, so retries, replays
/// and other instances pick the same channel. Channels that cannot be used for
/// the user (no address, opted out) give way to the fallback list, in order.
public struct ChannelRouter: Sendable, Equatable {
    public struct Weight: Sendable, Equatable {
        public var channel: String
        public var weight: Int
        public init(_ channel: String, _ weight: Int) {
            self.channel = channel
            self.weight = weight
        }
    }

    public let weights: [Weight]
    public let fallback: [String]
    private let total: UInt64

    /// Weights must be non-negative with a positive sum (validated upstream).
    public init(weights: [Weight], fallback: [String]) {
        precondition(weights.allSatisfy { $0.weight >= 0 } && weights.contains { $0.weight > 0 }, "weights need a positive sum")
        self.weights = weights
        self.fallback = fallback
        self.total = UInt64(weights.reduce(0) { $0 + $1.weight })
    }

    /// The weighted choice for this user, before any fallback.
    public func primary(campaignID: String, userID: String) -> String {
        // Multiply-shift maps the 64-bit hash onto 0..<total without modulo bias worth noting.
        let hash = StableHash.uint64("route", campaignID, userID)
        let point = hash.multipliedFullWidth(by: total).high
        var cumulative: UInt64 = 0
        for w in weights where w.weight > 0 {
            cumulative += UInt64(w.weight)
            if point < cumulative { return w.channel }
        }
        return weights.last { $0.weight > 0 }!.channel
    }

    public enum Availability: Sendable, Equatable {
        case available
        case noAddress
        case optedOut
    }

    public enum Decision: Sendable, Equatable {
        case send(channel: String)
        /// Nothing usable: `opted_out` if every candidate was opted out, else `no_address`.
        case skip(reason: SkipReason)
    }

    /// The primary channel, or the first usable fallback.
    public func decide(campaignID: String, userID: String, availability: (String) -> Availability) -> Decision {
        // The primary, then each fallback once (no list built per user).
        let first = primary(campaignID: campaignID, userID: userID)
        var allOptedOut = true
        switch availability(first) {
        case .available: return .send(channel: first)
        case .optedOut: break
        case .noAddress: allOptedOut = false
        }
        for (index, channel) in fallback.enumerated() where channel != first && !fallback[..<index].contains(channel) {
            switch availability(channel) {
            case .available: return .send(channel: channel)
            case .optedOut: continue
            case .noAddress: allOptedOut = false
            }
        }
        return .skip(reason: allOptedOut ? .optedOut : .noAddress)
    }
}
