import CRdKafka

extension KafkaMessage {
    /// Copies a consumed record out of librdkafka's buffers.
    init(copying message: UnsafeMutablePointer<rd_kafka_message_t>) {
        let m = message.pointee
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(message, &type)
        self.init(
            topic: String(cString: rd_kafka_topic_name(m.rkt)),
            partition: m.partition,
            offset: m.offset,
            key: m.key.flatMap { m.key_len > 0 ? Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) : nil },
            value: m.payload.flatMap { m.len > 0 ? Array(UnsafeRawBufferPointer(start: $0, count: m.len)) : nil } ?? [],
            timestampMs: type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts)
    }
}
