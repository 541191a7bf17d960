import CRdKafka

/// A producer's topic handle (`rd_kafka_topic_t`); its owner destroys it once.
struct RDKafkaTopic: @unchecked Sendable {
    let pointer: OpaquePointer
    let name: String

    init(_ client: RDKafkaClient, name: String) throws {
        guard let created = rd_kafka_topic_new(client.pointer, name, nil) else {
            throw KafkaError(code: rd_kafka_last_error(), context: "topic \(name)")
        }
        self.pointer = created
        self.name = name
    }

    func destroy() { rd_kafka_topic_destroy(pointer) }

    /// Queues one record (librdkafka copies it) on any partition; `id` comes
    /// back in its delivery report. Throws when librdkafka did not queue it.
    func produce(key: [UInt8]?, value: [UInt8], id: UInt) throws {
        let rc = value.withUnsafeBytes { valueBytes in
            withOptionalBytes(key) { keyBytes in
                rd_kafka_produce(
                    pointer, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                    UnsafeMutableRawPointer(mutating: valueBytes.baseAddress), valueBytes.count,
                    keyBytes.baseAddress, keyBytes.count,
                    UnsafeMutableRawPointer(bitPattern: id))
            }
        }
        if rc != 0 { throw KafkaError(code: rd_kafka_last_error(), context: "produce to \(name)") }
    }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    guard let bytes else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
    return bytes.withUnsafeBytes(body)
}
