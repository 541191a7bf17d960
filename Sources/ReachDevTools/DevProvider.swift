import Foundation
import Hummingbird
import ReachCore
import Logging
import NIOCore
import Synchronization

/// A local provider that speaks SPEC §6's batch protocol and remembers what it
/// received: `reachd dev-provider` for the demo and benchmarks, and the
/// provider end-to-end tests assert against. Not for production.
public final class DevProvider: Sendable {
    public struct Stats: Sendable, Codable, Equatable {
        public var requests = 0
        public var messages = 0
        public var distinct = 0
        public var duplicates = 0
        public var byChannel: [String: Int] = [:]
        /// The most requests this provider was answering at once, by path.
        public var maxInFlight: [String: Int] = [:]
        /// With `latencyFromTitle`: publish → receipt of messages whose title is
        /// the publish time (µs since the epoch), as the trigger benchmark sends them.
        public var latency: Latency?
    }

    public struct Latency: Sendable, Codable, Equatable {
        public var count: Int
        public var p50_ms: Double
        public var p99_ms: Double
        public var max_ms: Double
        /// Seconds from the first to the last such message received, and their rate.
        public var span_seconds: Double
        public var per_second: Double
    }

    struct Batch {
        struct Message {
            let message_id: String
            let channel: String?
            let to: String?
            let title: String?
            let body: String?
        }
        let messages: [Message]

        /// SPEC §6's request body; nil when it is not one. Only the members
        /// named in `fields` are kept (a lean provider reads ids and channels).
        init?(_ body: ByteBuffer, fields: [String] = Batch.allFields) {
            let read = body.withUnsafeReadableBytes { raw in
                JSONParser.strings(ofObjectsIn: "messages", fields: fields, in: raw.bindMemory(to: UInt8.self))
            }
            guard let items = read else { return nil }
            func field(_ item: Int, _ name: String) -> String? { fields.firstIndex(of: name).flatMap { items[item, $0] } }
            var messages: [Message] = []
            messages.reserveCapacity(items.count)
            for item in 0..<items.count {
                guard let id = items[item, 0] else { return nil }
                messages.append(Message(message_id: id, channel: field(item, "channel"), to: field(item, "to"),
                                        title: field(item, "title"), body: field(item, "body")))
            }
            self.messages = messages
        }

        static let allFields = ["message_id", "channel", "to", "title", "body"]
    }

    /// One POST as it arrived, valid or not: what fault tests measure (when
    /// requests stop after a pause, which ids each request carried, and
    /// whether any body was empty or not a batch).
    public struct Request: Sendable {
        /// When its body had been read (wall clock).
        public let arrivedAt: Date
        public let path: String
        /// The batch's message ids in order; empty when the body is not a batch.
        public let messageIDs: [String]
        /// Its size; -1: the body could not be read to its end (cut off on the wire).
        public let bodyBytes: Int
        /// false: the body was empty, cut off or not SPEC §6's batch (answered 400).
        public let valid: Bool
    }

    /// What a test or demo wants the provider to answer for a request (nil: accept all).
    public typealias Behaviour = @Sendable (_ requestNumber: Int) -> (status: Int, retryAfter: Int?)?

    private let state = Mutex<Seen>(Seen())

    /// What arrived so far. A lean provider keeps reachd's own ids (`m-` and 32
    /// hex digits) as two numbers: the benchmark's million ids then cost no
    /// string hashing and no string kept per id.
    struct Seen {
        var byID: [String: Int] = [:]
        var compact = CompactCounts()
        var stats = Stats()
        var keys: [String: Int] = [:]
        var last: [String: Batch.Message] = [:]

        /// Counts one arrival of `id`; returns how many there were so far.
        mutating func count(_ id: String, compactable: Bool) -> Int {
            if compactable, let key = CompactID(id) { return compact.add(key) }
            byID[id, default: 0] += 1
            return byID[id]!
        }

        var all: [String: Int] {
            var all = byID
            compact.forEach { key, n in all[key.text] = n }
            return all
        }
    }

    /// How often each compact id arrived: open addressing on the id's own low
    /// bits (they are SHA-256 output, already uniform), so an arrival costs no
    /// hashing; a `Dictionary` spent a quarter of the provider's time seeding
    /// and running its hasher for a million ids.
    struct CompactCounts {
        private var keys: [CompactID] = Array(repeating: CompactID(high: 0, low: 0), count: 1 << 16)
        private var counts: [Int32] = Array(repeating: 0, count: 1 << 16)
        private var used = 0

        /// Counts one arrival; returns how many there were so far.
        mutating func add(_ key: CompactID) -> Int {
            if (used + 1) * 2 > counts.count { grow() }
            let slot = probe(key)
            if counts[slot] == 0 { (keys[slot], used) = (key, used + 1) }
            counts[slot] += 1
            return Int(counts[slot])
        }

        func forEach(_ body: (CompactID, Int) -> Void) {
            for slot in counts.indices where counts[slot] != 0 { body(keys[slot], Int(counts[slot])) }
        }

        /// Where `key` is, or the free slot where it goes: from its low bits on, one step at a time.
        private func probe(_ key: CompactID) -> Int {
            let mask = counts.count - 1
            var slot = Int(truncatingIfNeeded: key.low) & mask
            while counts[slot] != 0 && keys[slot] != key { slot = (slot + 1) & mask }
            return slot
        }

        private mutating func grow() {
            let (oldKeys, oldCounts) = (keys, counts)
            keys = Array(repeating: CompactID(high: 0, low: 0), count: oldCounts.count * 2)
            counts = Array(repeating: 0, count: oldCounts.count * 2)
            for i in oldCounts.indices where oldCounts[i] != 0 {
                let slot = probe(oldKeys[i])
                (keys[slot], counts[slot]) = (oldKeys[i], oldCounts[i])
            }
        }
    }

    /// A message id of the form `m-` + 32 lowercase hex digits, as 128 bits.
    struct CompactID: Equatable {
        let high: UInt64
        let low: UInt64

        init(high: UInt64, low: UInt64) { (self.high, self.low) = (high, low) }

        init?(_ id: String) {
            var id = id
            guard let parsed = id.withUTF8({ u -> (UInt64, UInt64)? in
                guard u.count == 34, u[0] == UInt8(ascii: "m"), u[1] == UInt8(ascii: "-") else { return nil }
                var high: UInt64 = 0, low: UInt64 = 0
                for i in 0..<32 {
                    let c = u[2 + i]
                    let digit: UInt8
                    switch c {
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c &- UInt8(ascii: "0")
                    case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c &- UInt8(ascii: "a") &+ 10
                    default: return nil
                    }
                    if i < 16 { high = high << 4 | UInt64(digit) } else { low = low << 4 | UInt64(digit) }
                }
                return (high, low)
            }) else { return nil }
            (high, low) = parsed
        }

        var text: String {
            func hex(_ v: UInt64) -> String {
                let digits = String(v, radix: 16)
                return String(repeating: "0", count: 16 - digits.count) + digits
            }
            return "m-" + hex(high) + hex(low)
        }
    }
    /// Requests being answered now, by path.
    private let inFlight = Mutex<[String: Int]>([:])
    private let delay: Duration
    private let behaviour: Behaviour?
    private let latencyFromTitle: Bool
    /// (received, latency) in µs, for `latencyFromTitle`.
    private let latencies = Mutex<[(Int64, Int64)]>([])
    private let log = Mutex<[Request]>([])
    /// Keep every valid request in `requests` (fault tests); invalid ones are always kept.
    private let recordRequests: Bool
    /// Keep the last copy of each message (`message(_:)`, for tests); a lean
    /// provider (the benchmark's) reads only ids, channels and titles.
    private let keepMessages: Bool
    private let fields: [String]

    public init(delay: Duration = .zero, behaviour: Behaviour? = nil, latencyFromTitle: Bool = false, recordRequests: Bool = false,
                keepMessages: Bool = true) {
        self.recordRequests = recordRequests
        self.keepMessages = keepMessages
        self.fields = keepMessages ? Batch.allFields : ["message_id", "channel"] + (latencyFromTitle ? ["title"] : [])
        self.delay = delay
        self.behaviour = behaviour
        self.latencyFromTitle = latencyFromTitle
    }

    public var stats: Stats {
        var stats = state.withLock { $0.stats }
        let samples = latencies.withLock { $0 }
        if !samples.isEmpty {
            let sorted = samples.map(\.1).sorted()
            func ms(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000 }
            let span = Double(samples.map(\.0).max()! - samples.map(\.0).min()!) / 1_000_000
            stats.latency = Latency(count: sorted.count, p50_ms: ms(0.5), p99_ms: ms(0.99), max_ms: Double(sorted.last!) / 1000,
                                    span_seconds: span, per_second: span > 0 ? Double(sorted.count - 1) / span : 0)
        }
        return stats
    }
    /// How many times each message id arrived (accepted or not).
    public var received: [String: Int] { state.withLock { $0.all } }
    /// How many requests carried each `Idempotency-Key`.
    public var idempotencyKeys: [String: Int] { state.withLock { $0.keys } }
    /// Every POST received, in arrival order (with `recordRequests`; invalid bodies always).
    public var requests: [Request] { log.withLock { $0 } }
    /// The POSTs whose body was empty or not a message batch.
    var invalidRequests: [Request] { log.withLock { $0.filter { !$0.valid } } }
    /// The last copy of a message, by id.
    public func message(_ id: String) -> (to: String?, title: String?, body: String?)? {
        state.withLock { $0.last[id].map { ($0.to, $0.title, $0.body) } }
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("stats") { _, _ in
            let data = try JSONEncoder().encode(self.stats)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.post("**") { request, _ in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: 64 << 20)
            } catch {
                // A body cut off on the wire (the client gave up mid-request): recorded as invalid, size -1.
                self.log.withLock {
                    $0.append(Request(arrivedAt: Date(), path: request.uri.path, messageIDs: [], bodyBytes: -1, valid: false))
                }
                throw error
            }
            let receivedAt = ToolClock.micros()
            let key = request.headers[.init("Idempotency-Key")!] ?? ""
            let parsed = Batch(body, fields: self.fields)
            if self.recordRequests || parsed == nil { self.log.withLock {
                $0.append(Request(arrivedAt: Date(timeIntervalSince1970: Double(receivedAt) / 1_000_000), path: request.uri.path,
                                  messageIDs: parsed?.messages.map(\.message_id) ?? [], bodyBytes: body.readableBytes,
                                  valid: parsed != nil))
            } }
            guard let batch = parsed else {
                return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"body is not a message batch\"}")))
            }
            let path = request.uri.path
            let now = self.inFlight.withLock { $0[path, default: 0] += 1; return $0[path]! }
            defer { self.inFlight.withLock { $0[path, default: 1] -= 1 } }
            let number = self.state.withLock { s -> Int in
                s.stats.requests += 1
                s.stats.maxInFlight[path] = max(s.stats.maxInFlight[path] ?? 0, now)
                s.keys[key, default: 0] += 1
                return s.stats.requests
            }
            if self.delay > .zero { try await Task.sleep(for: self.delay) }
            if let answer = self.behaviour?(number), !(200..<300).contains(answer.status) {
                var headers: HTTPFields = [.contentType: "application/json"]
                if let after = answer.retryAfter { headers[.retryAfter] = String(after) }
                return Response(status: .init(code: answer.status), headers: headers,
                                body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"simulated \(answer.status)\"}")))
            }
            // A batch is nearly always of one channel: counted here, added once.
            var channels: [(name: String, n: Int)] = []
            for m in batch.messages {
                let name = m.channel ?? "?"
                if let i = channels.firstIndex(where: { $0.name == name }) { channels[i].n += 1 } else { channels.append((name, 1)) }
            }
            let compactable = !self.keepMessages
            self.state.withLock { s in
                for m in batch.messages {
                    let count = s.count(m.message_id, compactable: compactable)
                    if self.keepMessages { s.last[m.message_id] = m }
                    if count == 1 { s.stats.distinct += 1 } else { s.stats.duplicates += 1 }
                }
                s.stats.messages += batch.messages.count
                for (name, n) in channels { s.stats.byChannel[name, default: 0] += n }
            }
            if self.latencyFromTitle {
                let samples = batch.messages.compactMap { m in m.title.flatMap { Int64($0) }.map { (receivedAt, receivedAt - $0) } }
                if !samples.isEmpty { self.latencies.withLock { $0.append(contentsOf: samples) } }
            }
            // The answer is built in one buffer.
            var out = ByteBuffer()
            out.reserveCapacity(batch.messages.count * 120 + 16)
            out.writeStaticString("{\"results\":[")
            let ref = ",\"status\":\"ok\",\"provider_ref\":\"dev-\(number)-"
            var quoted: [UInt8] = []
            quoted.reserveCapacity(64)
            for (i, m) in batch.messages.enumerated() {
                out.writeStaticString(i > 0 ? ",{\"message_id\":" : "{\"message_id\":")
                quoted.removeAll(keepingCapacity: true)
                JSONText.quote(m.message_id, into: &quoted)
                out.writeBytes(quoted)
                out.writeString(ref)
                out.writeString(String(i))
                out.writeStaticString("\"}")
            }
            out.writeStaticString("]}")
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out))
        }
        return router
    }

    public func makeApplication(host: String, port: Int, logger: Logger,
                                onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: makeRouter(), configuration: .init(address: .hostname(host, port: port), serverName: "reach-dev-provider"),
                    onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }
}
