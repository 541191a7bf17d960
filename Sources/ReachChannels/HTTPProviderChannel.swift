import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReachCore

/// The generic JSON batch provider of SPEC §6, used by `sms`, `push`, `webhook`
/// (and `email` when configured so): `POST url` with `{"messages": [...]}`,
/// an `Idempotency-Key` derived from the batch's message ids, optional
/// per-message `results` in the response.
public final class HTTPProviderChannel: Channel {
    public let name: String
    let url: String
    let authHeader: (name: String, value: String)?
    let timeout: Duration
    let client: HTTPClient

    /// `connections`: keep-alive connections to the provider (the channel's concurrency).
    public init(name: String, url: String, authHeader: (name: String, value: String)?, connections: Int, timeout: Duration) {
        self.name = name
        self.url = url
        self.authHeader = authHeader
        self.timeout = timeout
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(min(timeout.milliseconds, 5_000))), read: .milliseconds(timeout.milliseconds))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connections))
        configuration.decompression = .disabled
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    /// `b-` + hash of the batch's message ids: the same batch resent after a
    /// failure carries the same key.
    public static func batchID(_ batch: [OutboundMessage]) -> String {
        let hex = StableHash.digest(["batch"] + batch.map(\.messageID)).prefix(12).map { byte in
            (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
        return "b-" + hex.joined()
    }

    /// SPEC §6's request body as text (tests, logs).
    public static func body(_ batch: [OutboundMessage]) -> String { String(buffer: bodyBuffer(batch)) }

    /// The request body: built in one byte array (each string copied whole
    /// unless it needs escaping), then one copy into the request's buffer.
    static func bodyBuffer(_ batch: [OutboundMessage]) -> ByteBuffer {
        var out: [UInt8] = []
        out.reserveCapacity(batch.reduce(16) { $0 + 110 + $1.messageID.utf8.count + $1.campaignID.utf8.count + $1.userID.utf8.count
            + $1.to.utf8.count + $1.title.utf8.count + $1.body.utf8.count })
        JSONText.append("{\"messages\":[", to: &out)
        for (i, message) in batch.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            message.appendJSON(to: &out)
        }
        JSONText.append("]}", to: &out)
        return ByteBuffer(bytes: out)
    }

    public func send(_ batch: [OutboundMessage]) async -> [SendOutcome] {
        guard !batch.isEmpty else { return [] }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: Self.batchID(batch))
        if let authHeader { request.headers.add(name: authHeader.name, value: authHeader.value) }
        request.body = .bytes(Self.bodyBuffer(batch))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(timeout.milliseconds))
            let body = try await response.body.collect(upTo: 4 << 20)
            return Self.outcomes(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"),
                                 body: body, batch: batch)
        } catch {
            let reason = (error as? HTTPClientError).map { "\($0)" } ?? "\(type(of: error)): \(error)"
            return Array(repeating: .retryable("provider unreachable: \(reason)"), count: batch.count)
        }
    }

    /// SPEC §6: 2xx accepted (per-message `results` when given), 429/5xx
    /// retryable (honouring `Retry-After`, in seconds or as an HTTP-date read
    /// against `now`), other statuses permanent.
    static func outcomes(status: Int, retryAfter: String?, body: ByteBuffer, batch: [OutboundMessage],
                         now: Date = Date()) -> [SendOutcome] {
        switch status {
        case 200..<300:
            guard let results = Self.results(body, ids: batch.map(\.messageID)) else { return Array(repeating: .sent(), count: batch.count) }
            return Self.match(results, to: batch)
        case 429, 500..<600:
            let after = retryAfter.flatMap { RetryAfter.delay($0, now: now) }
            return Array(repeating: .retryable("\(status) \(Self.snippet(String(buffer: body)))", after: after), count: batch.count)
        default:
            return Array(repeating: .permanent("\(status) \(Self.snippet(String(buffer: body)))"), count: batch.count)
        }
    }

    /// One provider result: `message_id`, `status`, `error`, `provider_ref` (or `id`).
    typealias Result = (messageID: String?, status: String?, error: String?, ref: String?)

    /// Each message's outcome from the results: by position when the provider
    /// answers in request order (as providers do), else by message id. A
    /// message without a result was accepted.
    static func match(_ results: [Result], to batch: [OutboundMessage]) -> [SendOutcome] {
        func outcome(_ result: Result?) -> SendOutcome {
            guard let result else { return .sent() }
            if result.status == "error" { return .permanent(result.error ?? "rejected by the provider") }
            return .sent(result.ref)
        }
        if results.count == batch.count, zip(results, batch).allSatisfy({ $0.0.messageID == $0.1.messageID }) {
            return results.map(outcome)
        }
        var byID: [String: Result] = [:]
        byID.reserveCapacity(results.count)
        for result in results { if let id = result.messageID { byID[id] = result } }
        return batch.map { outcome(byID[$0.messageID]) }
    }

    /// The provider's per-message answer (`results`), read straight from the
    /// body's bytes: no dictionary per result (Foundation's JSONDecoder once cost a
    /// quarter of the campaign path's CPU here, a generic parse a twentieth).
    static func results(_ body: ByteBuffer, ids: [String] = []) -> [Result]? {
        body.withUnsafeReadableBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            guard let items = JSONParser.strings(ofObjectsIn: "results", fields: ["message_id", "status", "error", "provider_ref", "id"],
                                                 in: bytes, known: ids) else { return nil }
            return (0..<items.count).map { (items[$0, 0], items[$0, 1], items[$0, 2], items[$0, 3] ?? items[$0, 4]) }
        }
    }

    static func snippet(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return Redaction.maskText(flat.count > 200 ? String(flat.prefix(200)) + "…" : flat)
    }
}
