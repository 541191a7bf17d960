import ReachCore
import Testing

@Suite("circuit breaker")
struct CircuitBreakerTests {
    let t0 = ContinuousClock.now

    @Test("opens on the failure rate once enough calls were seen, not before")
    func opens() {
        var b = CircuitBreaker(failureRate: 0.5, window: .seconds(10), minimumCalls: 4, coolDown: .seconds(5))
        for i in 0..<3 { b.record(success: false, now: t0 + .milliseconds(i)) }
        #expect(!b.isOpen, "three calls are below the minimum")
        b.record(success: true, now: t0 + .milliseconds(3))
        #expect(b.isOpen, "3 of 4 failed")
        let (allowed, retryAt) = b.allow(now: t0 + .seconds(1))
        #expect(!allowed && retryAt == t0 + .milliseconds(3) + .seconds(5))
    }

    @Test("old outcomes leave the window")
    func slidingWindow() {
        var b = CircuitBreaker(failureRate: 0.5, window: .seconds(10), minimumCalls: 4, coolDown: .seconds(5))
        for i in 0..<3 { b.record(success: false, now: t0 + .milliseconds(i)) }
        for i in 0..<4 { b.record(success: true, now: t0 + .seconds(20) + .milliseconds(i)) }
        #expect(!b.isOpen, "the failures are 20 s old")
    }

    @Test("a busy window (thousands of calls, compacted as it slides) keeps an exact failure count")
    func busyWindow() {
        var b = CircuitBreaker(failureRate: 0.5, window: .seconds(1), minimumCalls: 10, coolDown: .seconds(5))
        // 10 000 calls over 10 s, one in three failing: never half, never open.
        for i in 0..<10_000 { b.record(success: i % 3 != 0, now: t0 + .milliseconds(i)) }
        #expect(!b.isOpen)
        // Then failures only. After k of them the 1 s window (≈1 000 calls) holds
        // ≈333 + 2k/3 failures, which reaches half at k ≈ 250.
        var opened = 0
        for i in 0..<1_000 where !b.isOpen {
            b.record(success: false, now: t0 + .milliseconds(10_000 + i))
            opened = i + 1
        }
        #expect(b.isOpen)
        #expect((245...255).contains(opened), "opened after \(opened) failures")
    }

    @Test("after the cool-down one probe goes; success closes, failure reopens")
    func halfOpen() {
        var b = CircuitBreaker(failureRate: 0.5, window: .seconds(10), minimumCalls: 2, coolDown: .seconds(5))
        b.record(success: false, now: t0)
        b.record(success: false, now: t0)
        #expect(b.allow(now: t0 + .seconds(4)).allowed == false)
        #expect(b.allow(now: t0 + .seconds(5)).allowed == true)
        #expect(b.state == .halfOpen)
        #expect(b.allow(now: t0 + .seconds(5)).allowed == false, "one probe at a time")
        b.record(success: false, now: t0 + .seconds(6))
        #expect(b.state == .open(until: t0 + .seconds(11)))
        #expect(b.allow(now: t0 + .seconds(11)).allowed)
        b.record(success: true, now: t0 + .seconds(11))
        #expect(b.state == .closed)
        #expect(b.allow(now: t0 + .seconds(11)).allowed)
    }
}
