import CRdKafka

/// The one error type of the Kafka module: a librdkafka error code, where it
/// happened, and whether trying again may help.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let context: String
    public let message: String

    init(code: rd_kafka_resp_err_t, context: String) {
        self.code = code.rawValue
        self.context = context
        self.message = String(cString: rd_kafka_err2str(code))
    }

    init(context: String, message: String) {
        self.code = RD_KAFKA_RESP_ERR__FAIL.rawValue
        self.context = context
        self.message = message
    }

    /// Transport trouble, time-outs, leader changes and a full local queue are
    /// worth retrying; configuration and authorisation problems are not.
    public var isRetryable: Bool {
        let retryable: [rd_kafka_resp_err_t] = [
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ]
        return retryable.contains { $0.rawValue == code }
    }

    var isQueueFull: Bool { code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue }

    public var description: String { "kafka \(context): \(message) (code \(code))" }
}
