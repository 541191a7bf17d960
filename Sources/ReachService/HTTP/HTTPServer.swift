import Foundation
import Hummingbird
import Logging
import NIOCore
import ReachCore
import Yams

/// reachd's HTTP server: health, readiness, metrics, the OpenAPI document
/// and, when an `OperatorAPI` is given, every `/v1` route of SPEC §7.
public enum HTTPServer {
    public static func makeRouter(readiness: Readiness, metrics: ReachMetrics, api: OperatorAPI? = nil,
                                  gateway: APIGateway? = nil) -> Router<ReachRequestContext> {
        let router = Router(context: ReachRequestContext.self)
        // Middleware first: it wraps only the routes added after it.
        router.add(middleware: HTTPMetricsMiddleware(metrics: metrics.http))
        router.get("healthz") { _, _ in
            json(.ok, "{\"status\":\"ok\"}")
        }
        router.get("readyz") { _, _ in
            let report = readiness.report()
            return json(report.ready ? .ok : .serviceUnavailable, try ReadinessBody(report).encoded())
        }
        router.get("metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("openapi.json") { _, _ in
            guard let document = OpenAPIDocument.json else {
                return json(.notFound, APIError.notFound("the OpenAPI document is not installed next to this binary").body)
            }
            return json(.ok, document)
        }
        ConsoleAssets.register(on: router)
        if let api, let gateway { gateway.register(api.routes, on: router) }
        return router
    }

    public static func makeApplication(
        settings: HTTPSettings, readiness: Readiness, metrics: ReachMetrics, api: OperatorAPI? = nil, gateway: APIGateway? = nil,
        logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(readiness: readiness, metrics: metrics, api: api, gateway: gateway),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "reachd"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? settings.port) },
            logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// `/readyz`'s answer: `{"ready": bool, "checks": {"kafka": {"ok": bool}, …}}`. It is open to
/// anyone, so it names each dependency and whether it is up, nothing more: the error itself (host
/// names, database users) is in the log and `reach_dependency_up`.
struct ReadinessBody: Encodable {
    struct Check: Encodable {
        var ok: Bool
    }
    var ready: Bool
    var checks: [String: Check]

    init(_ report: Readiness.Report) {
        ready = report.ready
        checks = Dictionary(uniqueKeysWithValues: report.checks.map { ($0.name, Check(ok: $0.up)) })
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// `deploy/openapi.yaml`, compiled in (`OpenAPIDocument+YAML.swift`, written by
/// `scripts/openapi-embed`; a test fails when the two differ) and served as JSON.
public enum OpenAPIDocument {
    public static let json: String? = Optional(yaml).flatMap { text in
        guard let object = try? Yams.load(yaml: text),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Counts and times every request by route template and status; an
/// unmatched path answers a JSON 404 (and is counted under `unmatched`, so
/// scanners cannot blow up the label set).
struct HTTPMetricsMiddleware: RouterMiddleware {
    typealias Context = ReachRequestContext
    let metrics: HTTPMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let route = context.endpointPath ?? "unmatched"
        do {
            let response = try await next(request, context)
            metrics.request(route: route, method: request.method.rawValue, status: Int(response.status.code), duration: .now - start)
            return response
        } catch let error as HTTPError {
            metrics.request(route: route, method: request.method.rawValue, status: Int(error.status.code), duration: .now - start)
            let code = error.status == .notFound ? "not_found" : "http_\(error.status.code)"
            let message = error.status == .notFound ? "no route \(request.method.rawValue) \(request.uri.path)" : (error.body ?? "\(error.status)")
            return HTTPServer.json(error.status, APIError(error.status, code, message).body)
        }
    }
}
