import CRdKafka

extension KafkaError {
    init(code: rd_kafka_resp_err_t, context: String) {
        self.init(code: code.rawValue, context: context, message: String(cString: rd_kafka_err2str(code)))
    }

    init(context: String, message: String) {
        self.init(code: RD_KAFKA_RESP_ERR__FAIL.rawValue, context: context, message: message)
    }

    /// Transport trouble, time-outs, leader changes and a full local queue.
    static let retryableCodes: Set<Int32> = Set([
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    ].map(\.rawValue))

    static let queueFullCode = RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue

    /// The group moved past this member's generation (it was rebalanced out,
    /// or a rebalance is under way): its commit can never succeed as it is.
    static let staleMembershipCodes: Set<Int32> = Set([
        RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID, RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST,
    ].map(\.rawValue))
}
