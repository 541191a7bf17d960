import ReachCore
import Testing

@Suite struct BackoffTests {
    @Test func ceilingDoublesAndCaps() {
        let b = Backoff(base: .milliseconds(100), max: .seconds(1))
        #expect(b.ceiling(afterAttempt: 1) == .milliseconds(100))
        #expect(b.ceiling(afterAttempt: 2) == .milliseconds(200))
        #expect(b.ceiling(afterAttempt: 4) == .milliseconds(800))
        #expect(b.ceiling(afterAttempt: 5) == .seconds(1))
        #expect(b.ceiling(afterAttempt: 500) == .seconds(1), "no overflow for huge attempt counts")
    }

    @Test func fullJitterStaysWithinCeiling() {
        let b = Backoff(base: .milliseconds(10), max: .seconds(5))
        var rng = SystemRandomNumberGenerator()
        for attempt in 1...20 {
            for _ in 0..<50 {
                let d = b.delay(afterAttempt: attempt, using: &rng)
                #expect(d >= .zero && d <= b.ceiling(afterAttempt: attempt))
            }
        }
    }
}

@Suite struct RedactionTests {
    @Test func masksPhonesAndEmails() {
        #expect(Redaction.maskPhone("13812341234") == "138****1234")
        #expect(Redaction.maskEmail("alice@x.com") == "a***@x.com")
        let line = Redaction.maskText("send to 13812341234 and bob.smith@example.com failed; order A-77 amount 129.5")
        #expect(line == "send to 138****1234 and b***@example.com failed; order A-77 amount 129.5")
        #expect(Redaction.maskText("+8613812341234") == "+86****1234")
        #expect(Redaction.maskText("user u-1001 at 2026-11-22") == "user u-1001 at 2026-11-22", "ids and dates are not phones")
        #expect(Redaction.maskText("postgresql://reach@127.0.0.1:5432/reach") == "postgresql://reach@127.0.0.1:5432/reach")
    }

    @Test func masksURLPasswords() {
        #expect(Redaction.maskURLPassword("postgresql://reach:s3cret@db:5432/reach") == "postgresql://reach:***@db:5432/reach")
        #expect(Redaction.maskURLPassword("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0")
        #expect(Redaction.maskURLPassword("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0")
    }

    @Test func jsonQuoting() {
        #expect(JSONText.quote("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
    }
}

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 4, base: .milliseconds(500), max: .seconds(60))

    @Test("permanent failures are dead at once; retryable ones retry until max_attempts counts them all")
    func decisions() {
        #expect(policy.decide(attempts: 1, retryable: false, retryAfter: nil) == .dead(reason: "provider_rejected"))
        for attempts in 1...3 {
            guard case .retry(let after) = policy.decide(attempts: attempts, retryable: true, retryAfter: nil) else {
                Issue.record("attempt \(attempts) should retry")
                continue
            }
            #expect(after <= policy.backoff.ceiling(afterAttempt: attempts))
        }
        #expect(policy.decide(attempts: 4, retryable: true, retryAfter: nil) == .dead(reason: "retries_exhausted"))
        #expect(RetryPolicy(maxAttempts: 1, base: .seconds(1), max: .seconds(1)).decide(attempts: 1, retryable: true, retryAfter: nil)
                == .dead(reason: "retries_exhausted"))
    }

    @Test("Retry-After is a floor under the jittered backoff")
    func retryAfter() {
        for _ in 0..<100 {
            guard case .retry(let after) = policy.decide(attempts: 1, retryable: true, retryAfter: .seconds(7)) else {
                Issue.record("should retry")
                return
            }
            #expect(after >= .seconds(7))
        }
    }
}
