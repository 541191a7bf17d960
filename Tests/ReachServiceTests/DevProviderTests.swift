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

    @Test("compact counts past several growths agree with a dictionary of the same ids")
    func compactCountsAgree() {
        var seen = DevProvider.Seen()
        var reference: [String: Int] = [:]
        var rng = SystemRandomNumberGenerator()
        var ids: [String] = []
        var wrong = 0
        for _ in 0..<150_000 {
            // Every tenth arrival repeats an earlier id; ids whose low bits collide are common at this size.
            let id = !ids.isEmpty && Int.random(in: 0..<10, using: &rng) == 0
                ? ids[Int.random(in: 0..<ids.count, using: &rng)]
                : "m-" + (0..<32).map { _ in String(Int.random(in: 0..<16, using: &rng), radix: 16) }.joined()
            ids.append(id)
            reference[id, default: 0] += 1
            if seen.count(id, compactable: true) != reference[id]! { wrong += 1 }
        }
        #expect(wrong == 0, "each arrival's count as the dictionary has it")
        #expect(seen.all == reference)
        #expect(seen.byID.isEmpty, "every id was compact")
    }
}
