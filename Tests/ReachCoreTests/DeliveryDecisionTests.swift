import Foundation
import ReachCore
import Testing

@Suite("DeliveryDecision: what one attempt becomes")
struct DeliveryDecisionTests {
    let policy = RetryPolicy(maxAttempts: 3, base: .milliseconds(500), max: .seconds(60))

    @Test("accepted → sent with the attempt number and the provider's reference")
    func accepted() {
        #expect(DeliveryDecision.decide(.accepted(providerRef: "p-1"), attempt: 2, policy: policy) == .sent(attempts: 2, providerRef: "p-1"))
    }

    @Test("retryable → wait for a retry while attempts remain, honouring Retry-After; then dead/retries_exhausted")
    func retryable() {
        var generator = FixedGenerator()
        let first = DeliveryDecision.decide(.retryable(retryAfter: .seconds(30)), attempt: 1, policy: policy, using: &generator)
        guard case .wait(.retry, let after, attempts: 1) = first else { Issue.record("\(first)"); return }
        #expect(after >= .seconds(30), "Retry-After is a floor")
        #expect(DeliveryDecision.decide(.retryable(retryAfter: nil), attempt: 3, policy: policy) == .dead(.retriesExhausted, attempts: 3))
    }

    @Test("rejected → dead/provider_rejected at once")
    func rejected() {
        #expect(DeliveryDecision.decide(.rejected, attempt: 1, policy: policy) == .dead(.providerRejected, attempts: 1))
    }

    @Test("deferred (breaker, paused channel) spends no attempt and waits with its reason")
    func deferred() {
        #expect(DeliveryDecision.decide(.deferred(.channelPaused, retryAfter: .seconds(5)), attempt: 3, policy: policy)
                == .wait(.channelPaused, after: .seconds(5), attempts: 2))
        #expect(DeliveryDecision.decide(.deferred(.circuitOpen, retryAfter: nil), attempt: 1, policy: policy)
                == .wait(.circuitOpen, after: .seconds(1), attempts: 0))
        #expect(DeliveryDecision.wait(.retry, after: .zero, attempts: 1).status == .scheduled)
    }

    @Test("string forms are SPEC's")
    func strings() {
        #expect(SkipReason.allCases.map(\.rawValue) == ["opted_out", "no_address", "frequency_cap", "expired", "cancelled", "duplicate"])
        #expect(CampaignState.allCases.map(\.rawValue) == ["scheduled", "running", "paused", "done", "cancelled", "failed"])
        #expect(CampaignState.allCases.filter(\.isFinal) == [.done, .cancelled, .failed])
    }
}

/// Always the middle of the range: backoff with jitter becomes predictable.
struct FixedGenerator: RandomNumberGenerator {
    mutating func next() -> UInt64 { UInt64.max / 2 }
}

@Suite("SendVerdict: may the next provider request of a campaign go out")
struct SendVerdictTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func verdict(stopping: Bool = false, lost: Bool = false, usable: Bool = true, state: CampaignState? = .running,
                 expires: TimeInterval? = nil) -> SendVerdict {
        .campaign(stopping: stopping, leaseLost: lost, leaseUsable: usable, state: state,
                  expiresAt: expires.map { now.addingTimeInterval($0) }, now: now)
    }

    @Test("go while running, leased and not expired")
    func go() { #expect(verdict() == .go) }

    @Test("shutdown first, then the lease, then pause/cancel, then expiry")
    func order() {
        #expect(verdict(stopping: true, lost: true, state: .cancelled, expires: -1) == .hold(.shuttingDown))
        #expect(verdict(lost: true, state: .paused) == .hold(.leaseLost))
        #expect(verdict(usable: false, state: .cancelled) == .hold(.leaseLost), "a lease past its usable part sends nothing")
        #expect(verdict(state: .paused, expires: -1) == .hold(.paused))
        #expect(verdict(state: .cancelled) == .hold(.cancelled))
        #expect(verdict(expires: 0) == .hold(.expired), "nothing is sent at or after expires_at")
        #expect(verdict(expires: 1) == .go)
    }

    @Test("only cancel and expiry settle the held users (skipped); pause, lost lease and shutdown leave them unsent")
    func skipReasons() {
        #expect(SendVerdict.Hold.cancelled.skipReason == .cancelled)
        #expect(SendVerdict.Hold.expired.skipReason == .expired)
        #expect([SendVerdict.Hold.paused, .leaseLost, .shuttingDown].allSatisfy { $0.skipReason == nil })
    }
}
