import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ServiceLifecycle
import Synchronization

/// Dead letters for invalid Kafka input: a `reach.dead_letters` row (once per
/// topic/partition/offset) and a message on `reach.dlq`.
///
/// The row keeps the whole message: `payload` holds it as a JSON string (NUL
/// replaced by U+FFFD, invalid UTF-8 decoded lossily) and, when that copy is not
/// exact, `raw` holds the bytes. The topic's copy always fits
/// `kafka.dlq_max_bytes`: the payload and the error (which may quote a value)
/// are cut, each cut ends with a marker, and `"truncated": true` is set.
struct InputDeadLetters: Sendable {
    let infrastructure: Infrastructure
    let metrics: PipelineMetrics
    let logger: Logger

    /// The error text kept in the table (UTF-8 bytes); the topic's copy is at most twice that, escaped.
    static let maxErrorBytes = 4_096
    /// A message key longer than this is cut on the dead letter (the key counts toward the topic's limit).
    static let maxKeyBytes = 1_024
    /// Room left in `dlq_max_bytes` for the Kafka record's own framing.
    static let recordOverhead = 512

    struct Letter: Sendable {
        var reason: String
        /// For the table: storable, at most `maxErrorBytes` (+ marker).
        var error: String
        var payloadJSON: String
        /// The exact bytes, when `payloadJSON` is not an exact copy.
        var raw: [UInt8]?
        var key: String?
        /// The `reach.dlq` message.
        var dlq: String
        var truncated: Bool
    }

    func record(_ message: KafkaMessage, _ error: ValidationError) async throws {
        let reason = error.message.hasPrefix("not valid JSON") ? "unparseable" : "invalid"
        try await record(message, reason: reason, error: error.description)
    }

    /// `reason` `unstorable`: PostgreSQL refused the message's own content (see `PostgresError.isDataError`).
    func record(_ message: KafkaMessage, reason: String, error: String) async throws {
        let letter = Self.letter(message, reason: reason, error: error, maxBytes: infrastructure.configuration.kafka.dlqMaxBytes)
        try await DeadLetterStore(client: infrastructure.postgres).recordInput(
            topic: message.topic, partition: message.partition, offset: message.offset, reason: letter.reason,
            error: letter.error, payloadJSON: letter.payloadJSON, raw: letter.raw)
        try await infrastructure.producer.send(topic: infrastructure.configuration.kafka.topics.dlq, key: letter.key, value: letter.dlq)
        metrics.inputRejected(topic: message.topic, reason: reason)
        logger.warning("input rejected", metadata: [
            "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)",
            "reason": "\(reason)", "error": "\(JSONText.cut(letter.error, maxBytes: 512).text)", "truncated": "\(letter.truncated)",
        ])
    }

    /// Builds both copies of a dead letter (pure; the size rules live here).
    static func letter(_ message: KafkaMessage, reason: String, error: String, maxBytes: Int, failedAt: Date = Date()) -> Letter {
        let exact = String(validating: message.value, as: UTF8.self).flatMap { $0.utf8.contains(0) ? nil : $0 }
        let text = exact ?? JSONText.storable(String(decoding: message.value, as: UTF8.self))
        let (tableError, errorCut) = JSONText.cut(JSONText.storable(error), maxBytes: maxErrorBytes)
        var key = message.key.map { JSONText.storable(String(decoding: $0, as: UTF8.self)) }
        var keyCut = false
        if let k = key, k.utf8.count > maxKeyBytes {
            key = JSONText.cut(k, maxBytes: maxKeyBytes).text
            keyCut = true
        }
        var envelope = JSONObjectWriter()
        envelope.add("reason", reason)
        envelope.add("error", json: JSONText.quote(tableError, maxBytes: 2 * maxErrorBytes).text)
        envelope.add("source", "input")
        envelope.add("topic", message.topic)
        envelope.add("partition", Int(message.partition))
        envelope.add("offset", Int(message.offset))
        envelope.add("failed_at", RFC3339.format(failedAt))
        let fixed = envelope.text.utf8.count + #","payload":"#.utf8.count + #","truncated":true}"#.utf8.count
        let budget = maxBytes - recordOverhead - (key?.utf8.count ?? 0) - fixed
        let (payload, payloadCut) = JSONText.quote(text, maxBytes: budget)
        envelope.add("payload", json: payload)
        let truncated = payloadCut || errorCut || keyCut
        if truncated { envelope.add("truncated", json: "true") }
        return Letter(reason: reason, error: tableError, payloadJSON: JSONText.quote(text), raw: exact == nil ? message.value : nil,
                      key: key, dlq: envelope.finish(), truncated: truncated)
    }
}
