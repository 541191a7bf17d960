import Foundation
import Hummingbird
import Logging
import NIOCore
import ReachCore
import ReachPostgres

/// The request context of reachd's HTTP server: Hummingbird's, plus the client's address for the audit trail.
public struct ReachRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// One `/v1` call as a handler sees it: authenticated, admitted, body read.
public struct APIRequest: Sendable {
    public var method: HTTPRequest.Method
    /// Path parameters, percent-decoded.
    public var parameters: [String: String]
    /// Query parameters, percent-decoded.
    public var query: [String: String]
    public var body: [UInt8]
    public var principal: APIPrincipal

    public func parameter(_ name: String) -> String { parameters[name] ?? "" }

    /// The body as a JSON object, refusing what PostgreSQL could not store; `allowed` lists its known keys.
    public func jsonObject(allowed: Set<String>? = nil) throws -> [String: JSONValue] {
        guard !body.isEmpty else { throw APIError.badRequest("the request needs a JSON object body") }
        let json: JSONValue
        do {
            json = try JSONParser.parse(body, storable: true)
        } catch {
            throw APIError.badRequest("the body is not valid JSON: \(error)", field: error.path.isEmpty ? nil : error.path)
        }
        guard let object = json.object else { throw APIError.badRequest("the body must be a JSON object") }
        if let allowed { try APIRequest.refuseUnknown(object, allowed: allowed, path: "") }
        return object
    }

    /// Unknown fields are refused (a typo must not be silently ignored).
    public static func refuseUnknown(_ object: [String: JSONValue], allowed: Set<String>, path: String) throws {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            let field = path.isEmpty ? unknown : "\(path).\(unknown)"
            throw APIError.badRequest("unknown field '\(field)'; known: \(allowed.sorted().joined(separator: ", "))", field: field)
        }
    }

    public func queryString(_ name: String) -> String? {
        guard let value = query[name], !value.isEmpty else { return nil }
        return value
    }

    /// `limit`: 1…500, default 50.
    public func limit(default value: Int = 50, max: Int = 500) throws -> Int {
        guard let text = queryString("limit") else { return value }
        guard let n = Int(text), (1...max).contains(n) else { throw APIError.badRequest("limit must be a whole number from 1 to \(max)", field: "limit") }
        return n
    }

    /// An RFC 3339 query parameter, normalised for PostgreSQL.
    public func time(_ name: String) throws -> String? {
        guard let text = queryString(name) else { return nil }
        guard let date = RFC3339.parse(text) else { throw APIError.badRequest("\(name) must be an RFC 3339 time", field: name) }
        return RFC3339.format(date)
    }

    /// A numeric keyset cursor (`after` of id-ordered lists).
    public func idCursor() throws -> Int? {
        guard let text = queryString("after") else { return nil }
        guard let n = Int(text), n > 0 else { throw APIError.badRequest("after must be a cursor from a previous page's next", field: "after") }
        return n
    }
}

/// A handler's answer; `target` names what a write call acted on, for the audit row.
public struct APIReply: Sendable {
    public var status: HTTPResponse.Status
    public var body: String
    public var headers: HTTPFields
    public var target: String?

    public init(_ status: HTTPResponse.Status = .ok, _ body: String, headers: HTTPFields = [:], target: String? = nil) {
        self.status = status
        self.body = body
        self.headers = headers
        self.target = target
    }

    /// `{"items": [...], "next": cursor|null}` (SPEC §7 lists).
    public static func list(_ items: [String], next: String?, extra: [(String, String)] = []) -> APIReply {
        var w = JSONObjectWriter(capacity: items.reduce(64) { $0 + $1.utf8.count + 1 })
        w.add("items", json: "[" + items.joined(separator: ",") + "]")
        w.add("next", next)
        for (key, json) in extra { w.add(key, json: json) }
        return APIReply(.ok, w.finish())
    }
}

/// One route of the operator API: the single table the router is built from,
/// the scope it needs, and whether it is a write call (audited).
public struct APIRoute: Sendable {
    public var method: HTTPRequest.Method
    /// OpenAPI form, `{name}` for parameters (Hummingbird matches the same syntax).
    public var path: String
    public var scope: APIScope
    public var summary: String
    public var handler: @Sendable (APIRequest) async throws -> APIReply

    public init(_ method: HTTPRequest.Method, _ path: String, _ scope: APIScope, _ summary: String,
                _ handler: @escaping @Sendable (APIRequest) async throws -> APIReply) {
        self.method = method
        self.path = path
        self.scope = scope
        self.summary = summary
        self.handler = handler
    }

    /// Calls that change something: every write-scope route except reads (GET /v1/audit).
    public var isWrite: Bool { scope == .write && method != .get }
    var takesBody: Bool { method == .post || method == .put }
}

/// Everything around a handler: authentication, scope, rate limit, body
/// limit, error mapping and the audit row. A handler only sees admitted calls.
public struct APIGateway: Sendable {
    public var tokens: APITokens
    public var limiter: APIRateLimiter
    public var maxBodyBytes: Int
    public var audit: AuditStore?
    public var logger: Logger

    public init(tokens: APITokens, limiter: APIRateLimiter, maxBodyBytes: Int, audit: AuditStore?, logger: Logger) {
        self.tokens = tokens
        self.limiter = limiter
        self.maxBodyBytes = maxBodyBytes
        self.audit = audit
        self.logger = logger
    }

    public func register(_ routes: [APIRoute], on router: Router<ReachRequestContext>) {
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in
                await serve(route, request, context)
            }
        }
    }

    func serve(_ route: APIRoute, _ request: Request, _ context: ReachRequestContext) async -> Response {
        var request = request
        var principal: APIPrincipal?
        var body: [UInt8] = []
        let reply: APIReply
        do {
            guard let caller = tokens.principal(authorization: request.headers[.authorization]) else { throw APIError.unauthorized }
            principal = caller
            guard caller.scope >= route.scope else {
                throw APIError(.forbidden, "forbidden", "token '\(caller.name)' has scope \(caller.scope.rawValue); \(route.method.rawValue) \(route.path) needs \(route.scope.rawValue)")
            }
            if let wait = limiter.admit(caller.name) {
                var e = APIError(.tooManyRequests, "rate_limited", "too many requests for token '\(caller.name)'; retry in \(wait) s")
                e.headers[.retryAfter] = String(wait)
                throw e
            }
            if route.takesBody {
                do {
                    body = Array(buffer: try await request.collectBody(upTo: maxBodyBytes))
                } catch {
                    throw APIError(.contentTooLarge, "payload_too_large", "the body is larger than \(maxBodyBytes) bytes (http.max_body_bytes)")
                }
            }
            var parameters: [String: String] = [:]
            for (key, value) in context.parameters {
                parameters[String(key)] = String(value).removingPercentEncoding ?? String(value)
            }
            var query: [String: String] = [:]
            for (key, value) in request.uri.queryParameters { query[String(key)] = String(value) }
            reply = try await route.handler(APIRequest(method: route.method, parameters: parameters, query: query, body: body, principal: caller))
        } catch {
            let refusal = Self.refusal(error, route: route, logger: logger)
            reply = APIReply(refusal.status, refusal.body, headers: refusal.headers)
        }
        if route.isWrite, let audit {
            await record(audit, route, request, context, principal, body, reply)
        }
        var headers = reply.headers
        headers[.contentType] = "application/json"
        return Response(status: reply.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
    }

    /// Maps any error to its answer; nothing internal (SQL, hosts) leaks beyond a short cause.
    static func refusal(_ error: any Error, route: APIRoute, logger: Logger) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ValidationError: return .invalid(e)
        case let e as SegmentSource.NotFound: return APIError(.badRequest, "invalid_request", e.description, field: "segment.id")
        case let e as PostgresError where e.isStatementTimeout:
            return APIError(.serviceUnavailable, "timeout", "PostgreSQL took too long for this request; narrow it and try again")
        case let e as PostgresError where e.isDataError:
            return APIError(.badRequest, "invalid_request", "PostgreSQL refused a value of the request: \(e.message)")
        default:
            logger.error("API call failed", metadata: ["route": "\(route.method.rawValue) \(route.path)", "error": "\(error)"])
            return APIError(.serviceUnavailable, "unavailable", "a dependency is unavailable; try again (\(type(of: error)))")
        }
    }

    func record(_ audit: AuditStore, _ route: APIRoute, _ request: Request, _ context: ReachRequestContext,
                _ principal: APIPrincipal?, _ body: [UInt8], _ reply: APIReply) async {
        let target = reply.target ?? context.parameters.get("id") ?? context.parameters.get("name") ?? context.parameters.get("user_id")
        let entry = AuditStore.Entry(
            tokenName: principal?.name, client: context.remoteAddress?.ipAddress, method: route.method.rawValue, route: route.path,
            target: target.map { $0.removingPercentEncoding ?? $0 }, status: Int(reply.status.code),
            body: body.isEmpty ? nil : AuditMasking.mask(body: body))
        do {
            try await audit.record(entry)
        } catch {
            // The call's outcome stands; the missing row is logged, not hidden.
            logger.error("audit row not written", metadata: ["route": "\(route.path)", "status": "\(reply.status.code)", "error": "\(error)"])
        }
    }
}
