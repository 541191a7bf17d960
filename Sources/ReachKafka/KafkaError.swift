/// The one error type of the Kafka module: a librdkafka error code, where it
/// happened, and whether trying again may help.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let context: String
    public let message: String

    /// Transport trouble, time-outs, leader changes and a full local queue are
    /// worth retrying; configuration and authorisation problems are not.
    public var isRetryable: Bool { Self.retryableCodes.contains(code) }

    var isQueueFull: Bool { code == Self.queueFullCode }

    /// A commit refused because the group has moved past this member's
    /// generation. Retrying it would block the poll that rejoins the group.
    public var isStaleMembership: Bool { Self.staleMembershipCodes.contains(code) }

    public var description: String { "kafka \(context): \(message) (code \(code))" }
}
