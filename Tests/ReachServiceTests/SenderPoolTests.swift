import Foundation
@testable import ReachService
import Synchronization
import Testing

@Suite("a channel's sender pool")
struct SenderPoolUnitTests {
    @Test("never more holders than its size; urgent waiters go first, the rest in the order they asked")
    func order() async throws {
        let pool = SenderPool(size: 1)
        await pool.acquire()
        let log = Log()
        func waiter(_ name: String, urgent: Bool) -> Task<Void, Never> {
            Task {
                await pool.acquire(urgent: urgent)
                log.holders.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
                log.order.withLock { $0.append(name) }
                try? await Task.sleep(for: .milliseconds(5))
                log.holders.withLock { $0.now -= 1 }
                pool.release()
            }
        }
        let a = waiter("campaign-1", urgent: false)
        try await Task.sleep(for: .milliseconds(50))
        let b = waiter("campaign-2", urgent: false)
        try await Task.sleep(for: .milliseconds(50))
        let c = waiter("trigger", urgent: true)
        try await Task.sleep(for: .milliseconds(50))
        pool.release()
        for t in [a, b, c] { await t.value }
        #expect(log.order.withLock { $0 } == ["trigger", "campaign-1", "campaign-2"])
        #expect(log.holders.withLock { $0.most } == 1)
    }
}

/// What the waiters saw: the order they got a sender in, and how many held one at once.
private final class Log: Sendable {
    let order = Mutex<[String]>([])
    let holders = Mutex((now: 0, most: 0))
}
