import Foundation
import Logging
import ReachCore
import ReachPostgres
import Synchronization

/// A runner's hold on one campaign, or on one shard of it, renewed on its own
/// clock (not by page progress), and the gate every provider request of the run passes.
///
/// Each renewal reads the campaign's state, so pause, cancel and expiry are
/// seen within one `interval`. The lease's local deadline is counted from the
/// moment a renewal was *sent*, less a margin, so it always ends before the
/// `lease_until` PostgreSQL stored: once it has passed, the runner starts no
/// request, and nobody else can claim the campaign before then. A renewal that
/// finds another epoch marks the lease lost for good.
final class CampaignLease: Sendable {
    let campaignID: String
    let fence: Fence
    let duration: Duration
    let interval: Duration
    let expiresAt: Date?
    /// Renews the lease for this long; answers the campaign's state, nil when the fence is stale.
    private let renew: @Sendable (Duration) async throws -> String?
    private let logger: Logger

    private struct Status {
        var state: String
        var deadline: ContinuousClock.Instant
        var lost = false
        var stopping = false
    }

    private let status: Mutex<Status>

    init(campaignID: String, fence: Fence, duration: Duration, claimedAt: ContinuousClock.Instant, expiresAt: Date?,
         logger: Logger, renew: @escaping @Sendable (Duration) async throws -> String?) {
        self.campaignID = campaignID
        self.fence = fence
        self.duration = duration
        self.interval = min(.milliseconds(500), duration / 4)
        self.expiresAt = expiresAt
        self.renew = renew
        self.logger = logger
        self.status = Mutex(Status(state: CampaignState.running.rawValue, deadline: claimedAt + Self.usable(duration)))
    }

    /// The part of the lease a holder may use: a margin covers clocks that
    /// run at slightly different rates.
    static func usable(_ lease: Duration) -> Duration { lease - max(lease / 5, .milliseconds(100)) }

    var state: String { status.withLock { $0.state } }
    var isLost: Bool { status.withLock { $0.lost } }

    /// Stop sending (the instance is shutting down).
    func stop() { status.withLock { $0.stopping = true } }

    /// The gate of this run: asked before every provider request.
    var gate: SendGate {
        SendGate { [self] in verdict() }
    }

    func verdict() -> SendGate.Verdict {
        let s = status.withLock { $0 }
        return .campaign(stopping: s.stopping, leaseLost: s.lost, leaseUsable: ContinuousClock.now < s.deadline,
                         state: CampaignState(rawValue: s.state), expiresAt: expiresAt, now: Date(), shard: fence.shard != nil)
    }

    /// Renews the lease every `interval` until cancelled or lost.
    func keep() async {
        var failures = 0
        while !Task.isCancelled && !isLost {
            let sentAt = ContinuousClock.now
            do {
                if let state = try await renew(duration) {
                    status.withLock { s in
                        s.state = state
                        s.deadline = max(s.deadline, sentAt + Self.usable(duration))
                    }
                    if failures > 0 { logger.info("campaign lease renewed again", metadata: ["campaign": "\(campaignID)", "shard": "\(fence.shard.map(String.init) ?? "-")"]) }
                    failures = 0
                } else {
                    status.withLock { $0.lost = true }
                    logger.warning("campaign lease taken over by another runner; this one stops sending",
                                   metadata: ["campaign": "\(campaignID)", "epoch": "\(fence.epoch)"])
                    return
                }
            } catch {
                failures += 1
                if failures == 1 {
                    logger.warning("campaign lease not renewed; sending stops when it runs out",
                                   metadata: ["campaign": "\(campaignID)", "error": "\(error)"])
                }
            }
            try? await Task.sleep(for: interval)
        }
    }
}
