import ReachService
import Testing

@Suite("WakeSignal: passes at once, on a signal and on the interval, without polling")
struct WakeSignalTests {
    @Test("the first pass is immediate, a signal brings the next long before the interval, signals while busy collapse into one")
    func passes() async throws {
        let wake = WakeSignal()
        let start = ContinuousClock.now
        var times: [Duration] = []
        var iterator = wake.passes(every: .seconds(30)).makeAsyncIterator()
        _ = try await iterator.next()
        times.append(.now - start)
        Task {
            try await Task.sleep(for: .milliseconds(100))
            wake.signal()
        }
        _ = try await iterator.next()
        times.append(.now - start)
        // Three signals while the loop is "busy" are one pending pass.
        wake.signal()
        wake.signal()
        wake.signal()
        _ = try await iterator.next()
        times.append(.now - start)
        // Upper bounds stay far below the 30 s interval (the parallel suite can hold the cooperative pool for seconds).
        #expect(times[0] < .seconds(10), "\(times)")
        #expect(times[1] >= .milliseconds(100) && times[1] < .seconds(15), "\(times)")
        #expect(times[2] - times[1] < .seconds(10), "\(times)")
        let t0 = ContinuousClock.now
        Task {
            try await Task.sleep(for: .milliseconds(300))
            wake.signal()
        }
        _ = try await iterator.next()
        let waited = ContinuousClock.now - t0
        #expect(waited >= .milliseconds(250), "the collapsed signals left no extra pass behind: \(waited)")
    }

    @Test("without signals a pass comes every interval")
    func interval() async throws {
        let wake = WakeSignal()
        var iterator = wake.passes(every: .milliseconds(200)).makeAsyncIterator()
        _ = try await iterator.next()
        let start = ContinuousClock.now
        _ = try await iterator.next()
        _ = try await iterator.next()
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(15), "\(elapsed)")
    }
}
