/// The one error type of the Redis module. Its description never holds a
/// password or a command's arguments.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Could not connect, or the connection broke mid-call.
        case connection
        /// The server did not answer within the command timeout.
        case timeout
        /// Waiting to reconnect after a failure (backoff).
        case unavailable
        /// The server answered with an error reply.
        case server
        /// The reply had a shape the caller did not expect.
        case unexpectedReply
        /// A bad URL or configuration.
        case configuration
        /// Not sent: a cluster client cannot route it (keys of more than one
        /// slot in one command or script, or a command such as MULTI or SELECT).
        case refused
    }

    public let code: Code
    public let message: String
    /// True when the command was certainly not written to the server (the
    /// connection could not be opened, or was waiting out its backoff): the
    /// cluster client may then send it to another node.
    var unsent = false

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    init(_ code: Code, _ message: String, unsent: Bool) {
        self.init(code, message)
        self.unsent = unsent
    }

    /// Connection trouble and time-outs are retryable; an error reply is not.
    /// A retry after `connection` or `timeout` may repeat a command the server
    /// already ran: callers retry only what is safe to repeat.
    public var isRetryable: Bool {
        switch code {
        case .connection, .timeout, .unavailable: true
        case .server, .unexpectedReply, .configuration, .refused: false
        }
    }

    public var description: String { "redis \(code.rawValue): \(message)" }
}
