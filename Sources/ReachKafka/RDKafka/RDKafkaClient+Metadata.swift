import CRdKafka
import ReachCore

extension RDKafkaClient {
    /// Requests cluster metadata; throws when no broker answers within `timeout`.
    func checkMetadata(timeout: Duration) throws {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(pointer, 0, nil, &metadata, Int32(timeout.milliseconds))
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "metadata") }
    }

    /// How many partitions `topic` has.
    func partitionCount(of topic: String, timeout: Duration) throws -> Int32 {
        let topicHandle = try RDKafkaTopic(self, name: topic)
        defer { topicHandle.destroy() }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(pointer, 0, topicHandle.pointer, &metadata, Int32(timeout.milliseconds))
        defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata, metadata.pointee.topic_cnt > 0 else {
            throw KafkaError(code: err, context: "metadata of \(topic)")
        }
        return metadata.pointee.topics[0].partition_cnt
    }

    /// The (low, high) watermarks of a partition, asked of the leader.
    func watermarks(_ tp: TopicPartition, timeout: Duration) throws -> (low: Int64, high: Int64) {
        var low: Int64 = 0
        var high: Int64 = 0
        let err = rd_kafka_query_watermark_offsets(pointer, tp.topic, tp.partition, &low, &high, Int32(timeout.milliseconds))
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(code: err, context: "watermarks \(tp)") }
        return (low, high)
    }
}
