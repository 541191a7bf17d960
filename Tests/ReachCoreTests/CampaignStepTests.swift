import Foundation
@testable import ReachCore
import Testing

@Suite("what a campaign run does next, and what a queued retry does when due")
struct CampaignStepTests {
    @Test("go sends; cancel and expiry skip; pause and shutdown hand the lease back")
    func steps() {
        #expect(CampaignStep.next(.go, takenOver: false) == .send)
        #expect(CampaignStep.next(.hold(.cancelled), takenOver: false) == .skip(.cancelled))
        #expect(CampaignStep.next(.hold(.expired), takenOver: false) == .skip(.expired))
        #expect(CampaignStep.next(.hold(.paused), takenOver: false) == .handBack(.paused))
        #expect(CampaignStep.next(.hold(.shuttingDown), takenOver: false) == .handBack(.shuttingDown))
    }

    @Test("a late renewal waits for the lease; a lease another runner took stops the run")
    func lease() {
        #expect(CampaignStep.next(.hold(.leaseLost), takenOver: false) == .awaitLease)
        #expect(CampaignStep.next(.hold(.leaseLost), takenOver: true) == .stop)
    }

    @Test("a run ends only when every user has a row and no retry waits; a cancelled campaign ends cancelled")
    func ending() {
        #expect(CampaignEnding.decide(everyUserHasRow: false, pendingRetries: 0, state: .running) == .readAgain)
        #expect(CampaignEnding.decide(everyUserHasRow: true, pendingRetries: 3, state: .running) == .awaitRetries)
        #expect(CampaignEnding.decide(everyUserHasRow: true, pendingRetries: 0, state: .running) == .finish(.done))
        #expect(CampaignEnding.decide(everyUserHasRow: true, pendingRetries: 0, state: .cancelled) == .finish(.cancelled))
    }

    @Test("a due retry: attempted while its row waits, later while paused or unwritten, dropped once settled or orphaned")
    func retry() {
        #expect(RetryStep.decide(row: .scheduled, campaign: .running) == .attempt)
        #expect(RetryStep.decide(row: .scheduled, campaign: .cancelled) == .attempt, "the attempt's gate settles it as skipped/cancelled")
        #expect(RetryStep.decide(row: .scheduled, campaign: .paused) == .later(RetryStep.pausedRecheck))
        #expect(RetryStep.decide(row: nil, campaign: .running) == .later(RetryStep.unwrittenRecheck))
        #expect(RetryStep.decide(row: nil, campaign: .paused) == .later(RetryStep.pausedRecheck))
        #expect(RetryStep.decide(row: nil, campaign: .done) == .drop)
        for settled in [DeliveryStatus.sent, .skipped, .dead] {
            #expect(RetryStep.decide(row: settled, campaign: .running) == .settled)
        }
    }
}
