import CRdKafka
import ReachCore

enum KafkaMetadata {
    /// Requests cluster metadata; throws when no broker answers within `timeout`.
    static func check(_ handle: RDKafkaHandle, timeout: Duration) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle.pointer, 0, nil, &metadata, Int32(timeout.milliseconds))
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "metadata") }
    }

    /// The (low, high) watermarks of a partition, asked of the leader.
    static func watermarks(_ handle: RDKafkaHandle, _ tp: TopicPartition, timeout: Duration) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(handle.pointer, tp.topic, tp.partition, &low, &high, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "watermarks \(tp)") }
        return (low, high)
    }
}
