import Foundation
import Logging
import ReachCore
import ReachPostgres
import ReachRedis
import ServiceLifecycle
import Synchronization

/// Puts delivery dead letters on `reach.dlq`, from the PostgreSQL outbox.
public struct DeadLetterPublisher: Service {
    let infrastructure: Infrastructure
    let logger: Logger

    public init(infrastructure: Infrastructure, logger: Logger) {
        self.infrastructure = infrastructure
        self.logger = logger
    }

    public func run() async throws {
        let store = DeadLetterStore(client: infrastructure.postgres)
        let producer = infrastructure.producer
        let topic = infrastructure.configuration.kafka.topics.dlq
        let maxBytes = infrastructure.configuration.kafka.dlqMaxBytes
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let published = try await store.publishPending { letter in
                    let (key, value) = Self.fit(letter.json, key: letter.key, maxBytes: maxBytes)
                    try await producer.send(topic: topic, key: key, value: value)
                }
                if published == 0 { try? await Task.sleep(for: .milliseconds(250)) }
            } catch {
                logger.warning("dead letters not published yet; will retry", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

extension DeadLetterPublisher {
    /// A delivery dead letter cut to fit `kafka.dlq_max_bytes` (key included):
    /// when it is over, `payload` becomes its JSON text as a string, cut and
    /// marked, long strings (the error) are cut and marked, and
    /// `"truncated": true` is added. The table keeps the whole row.
    static func fit(_ json: String, key: String?, maxBytes: Int) -> (key: String?, value: String) {
        var key = key
        if let k = key, k.utf8.count > InputDeadLetters.maxKeyBytes { key = JSONText.cut(k, maxBytes: InputDeadLetters.maxKeyBytes).text }
        let budget = maxBytes - InputDeadLetters.recordOverhead - (key?.utf8.count ?? 0)
        guard json.utf8.count > budget else { return (key, json) }
        var fields: [String: JSONValue] = [:]
        var payloadText = json
        if case .object(let o)? = try? JSONParser.parse(json) {
            fields = o
            payloadText = fields.removeValue(forKey: "payload").map { $0.jsonText } ?? ""
            for (name, value) in fields {
                if case .string(let s) = value, s.utf8.count > InputDeadLetters.maxErrorBytes {
                    fields[name] = .string(JSONText.cut(s, maxBytes: InputDeadLetters.maxErrorBytes).text)
                }
            }
        }
        fields["truncated"] = .bool(true)
        let head = JSONValue.object(fields).jsonText
        let (payload, _) = JSONText.quote(payloadText, maxBytes: budget - head.utf8.count - #","payload":"#.utf8.count)
        return (key, String(head.dropLast()) + #","payload":"# + payload + "}")
    }
}
