import Hummingbird
import Logging
import NIOCore
import ReachCore

/// The operator-facing HTTP server: health, readiness and metrics for now.
public enum HTTPServer {
    public static func makeRouter(readiness: Readiness, metrics: ReachMetrics) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("healthz") { _, _ in
            json(.ok, "{\"status\":\"ok\"}")
        }
        router.get("readyz") { _, _ in
            let report = await readiness.check()
            var body = "{\"ready\":\(report.ready),\"checks\":{"
            body += report.checks.map { check in
                var entry = JSONText.quote(check.name) + ":{\"ok\":\(check.error == nil)"
                if let error = check.error { entry += ",\"error\":" + JSONText.quote(error) }
                return entry + "}"
            }.joined(separator: ",")
            body += "}}"
            return json(report.ready ? .ok : .serviceUnavailable, body)
        }
        router.get("metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        return router
    }

    public static func makeApplication(
        settings: HTTPSettings, readiness: Readiness, metrics: ReachMetrics, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: makeRouter(readiness: readiness, metrics: metrics),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "reachd"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? settings.port) },
            logger: logger)
    }

    static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
