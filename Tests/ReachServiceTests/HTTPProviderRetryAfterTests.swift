import Foundation
import Hummingbird
import Logging
import ReachChannels
import ReachCore
import Synchronization
import Testing
import TestSupport

/// A provider that answers every batch 429 with the `Retry-After` value the test sets.
final class LimitingProvider: Sendable {
    let retryAfter = Mutex<String>("")

    func start() async throws -> (port: Int, task: Task<Void, any Error>) {
        let router = Router()
        router.post("**") { _, _ in
            var headers = HTTPFields()
            headers[.retryAfter] = self.retryAfter.withLock { $0 }
            return Response(status: .tooManyRequests, headers: headers)
        }
        let port = Mutex<Int?>(nil)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
                              logger: Logger(label: "limiting-provider"))
        let task = Task { try await app.runService() }
        guard try await eventually(timeout: .seconds(30), { port.withLock { $0 } != nil }) else {
            task.cancel()
            throw TestEnvironment.Missing(name: "limiting provider did not start")
        }
        return (port.withLock { $0 }!, task)
    }
}

@Suite("HTTP provider channel: Retry-After as delay-seconds or HTTP-date")
struct HTTPProviderRetryAfterTests {
    static func imfFixdate(_ date: Date) -> String { HTTPDate.format(date) }

    @Test("a 429 with an HTTP-date waits until that date; one in the past waits 0; delay-seconds still works")
    func httpDate() async throws {
        let provider = LimitingProvider()
        let (port, task) = try await provider.start()
        defer { task.cancel() }
        let channel = HTTPProviderChannel(name: "sms", url: "http://127.0.0.1:\(port)/sms", authHeader: nil, connections: 1, timeout: .seconds(5))
        let batch = [OutboundMessage(messageID: "m1", campaignID: "c1", userID: "u1", channel: "sms", to: "+8613800000001",
                                     title: "", body: "hi")]
        func outcome(_ header: String) async -> SendOutcome {
            provider.retryAfter.withLock { $0 = header }
            return await channel.send(batch)[0]
        }

        let dated = await outcome(Self.imfFixdate(Date().addingTimeInterval(120)))
        let past = await outcome(Self.imfFixdate(Date().addingTimeInterval(-3600)))
        let far = await outcome(Self.imfFixdate(Date().addingTimeInterval(86_400 * 365)))
        let seconds = await outcome("7")
        // Before any expectation can throw: a client dropped without shutdown traps.
        await channel.shutdown()

        // Whole seconds on the wire: the wait is 120 s less what passed since the header was made (< 1 s + the call).
        #expect(dated.status == .retryable)
        let wait = try #require(dated.retryAfter, "the HTTP-date was ignored")
        #expect(wait > .seconds(115) && wait <= .seconds(120), "\(wait)")
        #expect(past.status == .retryable && past.retryAfter == .zero)
        #expect(far.retryAfter == .seconds(86_400), "capped at a day")
        #expect(seconds.retryAfter == .seconds(7))
    }
}
