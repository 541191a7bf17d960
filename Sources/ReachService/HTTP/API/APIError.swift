import Hummingbird
import ReachCore

/// An operator API refusal: `{"error": {"code", "message"[, "field"]}}` with its status (SPEC §7).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// The path of the offending field in the request body or query, when there is one.
    public var field: String?
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public var body: String {
        var error = JSONObjectWriter()
        error.add("code", code)
        error.add("message", message)
        if let field { error.add("field", field) }
        var w = JSONObjectWriter()
        w.add("error", json: error.finish())
        return w.finish()
    }

    public static func badRequest(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, "invalid_request", message, field: field)
    }

    public static func invalid(_ error: ValidationError) -> APIError {
        APIError(.badRequest, "invalid_request", error.description, field: error.path.isEmpty ? nil : error.path)
    }

    public static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }
    public static func conflict(_ message: String) -> APIError { APIError(.conflict, "conflict", message) }
    public static let unauthorized: APIError = {
        var e = APIError(.unauthorized, "unauthorized", "send Authorization: Bearer <token> with a configured token")
        e.headers[.wwwAuthenticate] = "Bearer realm=\"reachd\""
        return e
    }()
}
