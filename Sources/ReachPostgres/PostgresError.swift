/// The one error type of the PostgreSQL module. It carries the SQLSTATE; its
/// description holds the server's primary message but never a connection
/// string, a password or the query's parameter values.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case connection
        case unavailable
        case timeout
        case server
        case protocolViolation = "protocol"
        case configuration
    }

    public let code: Code
    /// Five-character SQLSTATE for server errors (`23505`, `40001`, …).
    public let sqlState: String?
    public let message: String

    public init(_ code: Code, _ message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    /// Connection loss, time-outs, serialization failures, deadlocks and a
    /// server shutting down are retryable; constraint and syntax errors are not.
    public var isRetryable: Bool {
        switch code {
        case .connection, .unavailable, .timeout: return true
        case .protocolViolation, .configuration: return false
        case .server:
            guard let state = sqlState else { return false }
            return state.hasPrefix("08") || state.hasPrefix("53") || state.hasPrefix("57P")
                || state == "40001" || state == "40P01" || state == "55P03"
        }
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        if let sqlState { return "postgres \(code.rawValue) [\(sqlState)]: \(message)" }
        return "postgres \(code.rawValue): \(message)"
    }
}
