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

    /// The server refused the statement because of the data it was given, in a
    /// way no retry can fix: class 22 (data exception: `22P05` untranslatable
    /// character / NUL, `22003` numeric out of range, `22008` date/time out of
    /// range, `22021` bad encoding, …) and class 54 (program limit exceeded,
    /// e.g. `54000` a value too large). A message whose content causes one is a
    /// dead letter, not a retry. Connection, 08xxx, 40001, 57xxx… stay retryable.
    public var isDataError: Bool {
        guard code == .server, let state = sqlState else { return false }
        return state.hasPrefix("22") || state.hasPrefix("54")
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// The server cancelled the statement at `statement_timeout`.
    public var isStatementTimeout: Bool { sqlState == "57014" }

    public var description: String {
        if let sqlState { return "postgres \(code.rawValue) [\(sqlState)]: \(message)" }
        return "postgres \(code.rawValue): \(message)"
    }
}
