import Foundation
import NIOCore
@testable import ReachChannels
import ReachCore
import Testing

@Suite("generic HTTP provider semantics (SPEC §6)")
struct HTTPProviderOutcomeTests {
    let batch = (1...3).map { message("u\($0)", to: "+861380000000\($0)") }

    @Test func statusMapping() {
        let ok = HTTPProviderChannel.outcomes(status: 202, retryAfter: nil, body: ByteBuffer(), batch: batch)
        #expect(ok.map(\.status) == [.sent, .sent, .sent])
        let limited = HTTPProviderChannel.outcomes(status: 429, retryAfter: "7", body: ByteBuffer(string: "slow down"), batch: batch)
        #expect(limited.allSatisfy { $0.status == .retryable && $0.retryAfter == .seconds(7) })
        let dated = HTTPProviderChannel.outcomes(status: 503, retryAfter: "Wed, 21 Oct 2026 07:28:00 GMT", body: ByteBuffer(), batch: batch,
                                                 now: Date(timeIntervalSince1970: 1_792_567_650))
        #expect(dated.allSatisfy { $0.status == .retryable && $0.retryAfter == .seconds(30) }, "an HTTP-date: the wait until then")
        let down = HTTPProviderChannel.outcomes(status: 503, retryAfter: nil, body: ByteBuffer(), batch: batch)
        #expect(down.allSatisfy { $0.status == .retryable && $0.retryAfter == nil })
        let bad = HTTPProviderChannel.outcomes(status: 400, retryAfter: nil, body: ByteBuffer(string: "invalid number 13812345678"), batch: batch)
        #expect(bad.allSatisfy { $0.status == .permanent })
        #expect(bad[0].error?.contains("138****5678") == true, "phone numbers in provider errors are masked")
    }

    @Test("per-message results decide each message")
    func perMessage() {
        let body = """
            {"results": [{"message_id": "\(batch[0].messageID)", "status": "ok", "provider_ref": "p-1"},
                         {"message_id": "\(batch[1].messageID)", "status": "error", "error": "invalid number"}]}
            """
        let outcomes = HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: ByteBuffer(string: body), batch: batch)
        #expect(outcomes[0] == .sent("p-1"))
        #expect(outcomes[1].status == .permanent && outcomes[1].error == "invalid number")
        #expect(outcomes[2] == .sent(), "a message the results leave out was accepted with the batch")
    }

    @Test("results in request order match by position, in any other order by message id; odd members are skipped")
    func resultOrder() {
        let ids = batch.map(\.messageID)
        let inOrder = """
            {"other": {"x": [1, {"y": null}]}, "results": [{"message_id": "\(ids[0])", "id": "r-0", "extra": [true]},
             {"status": "error", "message_id": "\(ids[1])", "error": "bad \\"number\\" \\u00e9"}, {"message_id": "\(ids[2])", "status": "ok"}], "n": 1.5e3}
            """
        let ordered = HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: ByteBuffer(string: inOrder), batch: batch)
        #expect(ordered == [.sent("r-0"), .permanent("bad \"number\" é"), .sent()])
        let shuffled = """
            {"results": [{"message_id": "\(ids[2])", "status": "error", "error": "third"}, {"message_id": 7, "status": "error"},
                         {"message_id": "\(ids[0])", "provider_ref": "first"}]}
            """
        let byID = HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: ByteBuffer(string: shuffled), batch: batch)
        #expect(byID == [.sent("first"), .sent(), .permanent("third")], "a result without a string message_id decides nothing")
        // Every byte a provider may send: NUL, invalid UTF-8 and control bytes in a result's member nobody
        // reads leave the results readable; in a member that is read, or beside `results`, they make the
        // body unreadable, and an unreadable 2xx body accepts the batch.
        func bytes(_ parts: [[UInt8]]) -> ByteBuffer { ByteBuffer(bytes: parts.joined()) }
        let oddUnread = bytes([Array(#"{"results":[{"message_id":""#.utf8), Array(ids[0].utf8),
                               Array(#"","status":"error","error":"no","extra":""#.utf8), [0x00, 0xFF, 0xC3, 0x28, 0x01], Array(#""}]}"#.utf8)])
        #expect(HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: oddUnread, batch: batch) == [.permanent("no"), .sent(), .sent()])
        let oddRead = bytes([Array(#"{"results":[{"message_id":""#.utf8), Array(ids[0].utf8),
                             Array(#"","status":"error","error":""#.utf8), [0xFF, 0xFE], Array(#""}]}"#.utf8)])
        let oddBeside = bytes([Array(#"{"note":""#.utf8), [0x00, 0xFF], Array(#"","results":[{"message_id":""#.utf8), Array(ids[0].utf8),
                               Array(#"","status":"error"}]}"#.utf8)])
        for body in [oddRead, oddBeside] {
            #expect(HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: body, batch: batch) == [.sent(), .sent(), .sent()])
        }
        for junk in ["", "[]", "{\"results\": 3}", "{\"results\": [", "not json", "{\"results\": [{\"message_id\": \"\(ids[0])\", \"status\": \"error\"}]} x"] {
            #expect(HTTPProviderChannel.outcomes(status: 200, retryAfter: nil, body: ByteBuffer(string: junk), batch: batch) == [.sent(), .sent(), .sent()],
                    "an unreadable 2xx body accepts the batch: \(junk)")
        }
    }

    @Test("the body is the SPEC's JSON; the batch id is stable for the same messages")
    func bodyAndBatchID() throws {
        let text = HTTPProviderChannel.body([message("u1", to: "a\"b", title: "t\n", body: "é")])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let first = try #require((json["messages"] as? [[String: Any]])?.first)
        #expect(Set(first.keys) == ["message_id", "campaign_id", "user_id", "channel", "to", "title", "body"])
        #expect(first["to"] as? String == "a\"b" && first["title"] as? String == "t\n" && first["body"] as? String == "é")
        #expect(HTTPProviderChannel.batchID(batch) == HTTPProviderChannel.batchID(batch))
        #expect(HTTPProviderChannel.batchID(batch) != HTTPProviderChannel.batchID(Array(batch.prefix(2))))
    }
}
