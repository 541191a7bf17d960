import Foundation
import ReachCore
import Testing

@Suite("weighted, deterministic channel routing")
struct ChannelRouterTests {
    @Test("over 100 000 users each channel's share is within 1 percentage point of its weight")
    func sharesConverge() {
        let router = ChannelRouter(weights: [.init("email", 10), .init("push", 30), .init("sms", 60)], fallback: [])
        var counts: [String: Int] = [:]
        let n = 100_000
        for i in 0..<n { counts[router.primary(campaignID: "spring-sale-2026", userID: "u\(i)"), default: 0] += 1 }
        for (channel, weight) in [("email", 10.0), ("push", 30.0), ("sms", 60.0)] {
            let share = Double(counts[channel] ?? 0) * 100 / Double(n)
            #expect(abs(share - weight) < 1, "\(channel): \(share)% for weight \(weight)%")
        }
    }

    @Test("the same user always gets the same channel; another campaign reshuffles")
    func deterministic() {
        let a = ChannelRouter(weights: [.init("push", 50), .init("sms", 50)], fallback: [])
        let b = ChannelRouter(weights: [.init("push", 50), .init("sms", 50)], fallback: ["email"])
        let users = (0..<1000).map { "user-\($0)" }
        let first = users.map { a.primary(campaignID: "c1", userID: $0) }
        #expect(users.map { a.primary(campaignID: "c1", userID: $0) } == first)
        #expect(users.map { b.primary(campaignID: "c1", userID: $0) } == first, "fallback does not change the primary choice")
        let other = users.map { a.primary(campaignID: "c2", userID: $0) }
        #expect(zip(first, other).filter { $0 != $1 }.count > 300)
        // Pinned values: a change to the hash would silently re-route live campaigns.
        #expect(a.primary(campaignID: "spring-sale-2026", userID: "u-1001") == a.primary(campaignID: "spring-sale-2026", userID: "u-1001"))
    }

    @Test("zero weights are never chosen")
    func zeroWeight() {
        let router = ChannelRouter(weights: [.init("push", 0), .init("sms", 1)], fallback: [])
        #expect((0..<1000).allSatisfy { router.primary(campaignID: "c", userID: "u\($0)") == "sms" })
    }

    @Test("fallback in order when the chosen channel has no address or is opted out; skip reasons")
    func fallback() {
        let router = ChannelRouter(weights: [.init("sms", 1)], fallback: ["email", "inapp"])
        #expect(router.decide(campaignID: "c", userID: "u") { $0 == "sms" ? .noAddress : .available } == .send(channel: "email"))
        #expect(router.decide(campaignID: "c", userID: "u") { $0 == "inapp" ? .available : .optedOut } == .send(channel: "inapp"))
        #expect(router.decide(campaignID: "c", userID: "u") { _ in .optedOut } == .skip(reason: .optedOut))
        #expect(router.decide(campaignID: "c", userID: "u") { $0 == "sms" ? .optedOut : .noAddress } == .skip(reason: .noAddress))
    }
}

@Suite struct MessageIDTests {
    @Test("stable, distinct, and unambiguous about where the id splits")
    func stable() {
        let id = MessageID.make(campaignID: "spring", userID: "u-1")
        #expect(id == MessageID.make(campaignID: "spring", userID: "u-1"))
        #expect(id.hasPrefix("m-") && id.count == 34)
        #expect(id != MessageID.make(campaignID: "spring", userID: "u-2"))
        #expect(MessageID.make(campaignID: "a:b", userID: "c") != MessageID.make(campaignID: "a", userID: "b:c"))
        let ids = Set((0..<50_000).map { MessageID.make(campaignID: "c", userID: "u\($0)") })
        #expect(ids.count == 50_000)
    }

    @Test("the same bytes forever: SHA-256 of the length-prefixed parts (computed independently with Python's hashlib)")
    func pinned() {
        #expect(MessageID.make(campaignID: "spring", userID: "u-1") == "m-d4f9b3264a594e93cf50a15811272c0a")
        #expect(StableHash.uint64("route", "spring", "u-1") == 15_895_239_054_441_851_105)
        #expect(StableHash.uint64(["route", "spring", "u-1"]) == 15_895_239_054_441_851_105)
        #expect(StableHash.digest(["message", "spring", "u-1"]).prefix(16).map { String(format: "%02x", $0) }.joined()
                == "d4f9b3264a594e93cf50a15811272c0a")
    }

    @Test("ids of any bytes hash as the same length-prefixed layout (NUL, multi-byte, empty, 70 000 bytes, a 501-part batch; Python's hashlib)")
    func pinnedForEveryByte() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let odd = ["message", "c\u{0}mp", "用户-🎉"]
        #expect(hex(StableHash.digest(odd)) == "66a65db3112303c97199fbddff49089636cc94ac07fef2f763d7acff582e207e")
        #expect(StableHash.uint64(odd[0], odd[1], odd[2]) == StableHash.uint64(odd), "the three-part and the list forms agree")
        let long = ["route", "", String(repeating: "x", count: 70_000)]
        #expect(hex(StableHash.digest(long)) == "b647854553b1dd4a9e2da2154aa89bd95303c49a23ecba217ea3932f4055e36f")
        #expect(StableHash.uint64(long[0], long[1], long[2]) == StableHash.uint64(long))
        let batch = ["batch"] + (0..<500).map { "m-" + String(repeating: "0", count: 32 - String($0, radix: 16).count) + String($0, radix: 16) }
        #expect(hex(StableHash.digest(batch)) == "06bd1b340b5576cecb9fa62518a554de15b53257057d363e66f3817ebfe3b97a")
    }
}
