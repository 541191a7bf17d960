import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
@testable import ReachDevTools
import Testing

/// The lean dev provider (the benchmark's) keeps reachd's ids as two numbers:
/// its duplicate count, the benchmark's proof of "never twice", must stay exact.
@Suite("the lean dev provider")
struct DevProviderTests {
    @Test("a lean provider counts every id once and every repeat as a duplicate, reachd's ids and others alike")
    func leanCountsExactly() async throws {
        let provider = DevProvider(keepMessages: false)
        let (port, task) = try await startProvider(provider)
        defer { task.cancel() }
        let ids = ["m-00000000000000000000000000000000", "m-ffffffffffffffff0000000000000001", "m-d4f9b3264a594e93cf50a15811272c0a",
                   "m-D4F9B3264A594E93CF50A15811272C0A", "m-d4f9", "x-1", "m-g4f9b3264a594e93cf50a15811272c0a"]
        func post(_ ids: [String]) async throws -> String {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/sms")!)
            request.httpMethod = "POST"
            let messages = ids.map { #"{"message_id":"\#($0)","channel":"sms","to":"+8613800000000","title":"t","body":"b"}"# }
            request.httpBody = Data(#"{"messages":[\#(messages.joined(separator: ","))]}"#.utf8)
            let (data, response) = try await URLSession.shared.data(for: request)
            #expect((response as! HTTPURLResponse).statusCode == 200)
            return String(decoding: data, as: UTF8.self)
        }
        let answer = try await post(ids)
        for id in ids { #expect(answer.contains(#""message_id":"\#(id)""#)) }
        _ = try await post([ids[0], ids[2], ids[4], ids[3]])
        let stats = provider.stats
        #expect(stats.messages == ids.count + 4)
        #expect(stats.distinct == ids.count)
        #expect(stats.duplicates == 4)
        #expect(stats.byChannel == ["sms": ids.count + 4])
        let received = provider.received
        #expect(Set(received.keys) == Set(ids), "ids come back as they were sent, compact or not")
        #expect(received[ids[0]] == 2 && received[ids[2]] == 2 && received[ids[3]] == 2 && received[ids[4]] == 2)
        #expect(received[ids[1]] == 1 && received[ids[5]] == 1 && received[ids[6]] == 1)
    }
}
