import Foundation

/// What a campaign run does next, decided from its gate's verdict before each
/// page: the one rule behind pause, cancel, expiry, a late or lost lease and
/// shutdown for a run as a whole (the verdict itself is `SendVerdict.campaign`).
public enum CampaignStep: Sendable, Equatable {
    /// Read the next page and send it.
    case send
    /// Read the next page and settle its users as `skipped` with this reason (cancel, expiry).
    case skip(SkipReason)
    /// The lease was not renewed in time, but nobody else holds the campaign:
    /// wait for a renewal, then go on from the last checkpoint.
    case awaitLease
    /// Another runner holds the campaign now: stop at once, write nothing more.
    case stop
    /// Give the lease back (paused, or this instance is stopping); the campaign
    /// resumes from its checkpoint when it is claimed again.
    case handBack(SendVerdict.Hold)

    public static func next(_ verdict: SendVerdict, takenOver: Bool) -> CampaignStep {
        guard case .hold(let hold) = verdict else { return .send }
        if let reason = hold.skipReason { return .skip(reason) }
        switch hold {
        case .leaseLost: return takenOver ? .stop : .awaitLease
        default: return .handBack(hold)
        }
    }
}

/// What a run does when its segment has no page left.
public enum CampaignEnding: Sendable, Equatable {
    /// A page in flight was held back: some users have no row yet. Read again from the checkpoint.
    case readAgain
    /// Every user has a row, but retries are still queued: the campaign is not over.
    case awaitRetries
    /// Every user is settled: the campaign ends in this state.
    case finish(CampaignState)

    public static func decide(everyUserHasRow: Bool, pendingRetries: Int, state: CampaignState?) -> CampaignEnding {
        guard everyUserHasRow else { return .readAgain }
        guard pendingRetries == 0 else { return .awaitRetries }
        return .finish(state == .cancelled ? .cancelled : .done)
    }
}

/// What a queued retry (or deferral, or replay) does when it comes due, from
/// its row's status and its campaign's state.
public enum RetryStep: Sendable, Equatable {
    /// The row still waits: one more attempt.
    case attempt
    /// The row was settled meanwhile (sent, skipped, dead): nothing to do.
    case settled
    /// Not now: the campaign is paused, or the row is not written yet (a retry is
    /// queued just before its page's rows are written). Look again after this long.
    case later(Duration)
    /// The campaign ended and the row was never written (its runner lost the
    /// lease; the next runner settled the user itself): nothing waits for it.
    case drop

    public static let pausedRecheck = Duration.seconds(5)
    public static let unwrittenRecheck = Duration.milliseconds(500)

    public static func decide(row: DeliveryStatus?, campaign: CampaignState?) -> RetryStep {
        switch row {
        case nil:
            if campaign == .paused { return .later(pausedRecheck) }
            return campaign?.isFinal == true ? .drop : .later(unwrittenRecheck)
        case .scheduled?:
            return campaign == .paused ? .later(pausedRecheck) : .attempt
        case .sent?, .skipped?, .dead?:
            return .settled
        }
    }
}

/// When a `scheduled` row counts as stale: its delay-queue item is gone (lost
/// in a crash between queueing and writing). Age alone never makes it stale: a
/// quiet-hours deferral or a long `Retry-After` waits for hours with its item
/// queued. The sweep looks only at rows idle for `minimumIdle` (in SQL) and
/// re-queues only those whose item is missing (`DelayQueue.scheduleMissing`,
/// atomic in Redis, so an item queued meanwhile is never replaced).
public enum StaleRow {
    public static func minimumIdle(longestBackoff: Duration) -> Duration { longestBackoff + .seconds(300) }
}
