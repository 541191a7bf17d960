import HTTPTypes
import Hummingbird
import NIOCore

/// The operator web console (`console/` in the repository, compiled in by
/// `scripts/console-embed`): one HTML page, one stylesheet and one script,
/// served without authentication (they hold no data; every datum comes from
/// `/v1` with the operator's token).
public enum ConsoleAssets {
    /// No inline script or style, nothing from elsewhere, no framing, no form
    /// posts: a value that carried markup into the page could not run.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

    struct Asset: Sendable {
        let contentType: String
        let body: String
    }

    /// Path under `/console` → asset.
    static let assets: [String: Asset] = [
        "": Asset(contentType: "text/html; charset=utf-8", body: indexHTML + "\n"),
        "console.css": Asset(contentType: "text/css; charset=utf-8", body: stylesheet + "\n"),
        "console.js": Asset(contentType: "text/javascript; charset=utf-8", body: script + "\n"),
    ]

    static func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("console") { _, _ in response(assets[""]!) }
        router.get("console/:file") { _, context in
            let file = context.parameters.get("file") ?? ""
            guard let asset = assets[file] else {
                return HTTPServer.json(.notFound, APIError.notFound("no console file '\(file)'").body)
            }
            return response(asset)
        }
    }

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let frameOptions = HTTPField.Name("X-Frame-Options")!

    static func response(_ asset: Asset) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: asset.contentType,
                .contentSecurityPolicy: contentSecurityPolicy,
                .xContentTypeOptions: "nosniff",
                referrerPolicy: "no-referrer",
                frameOptions: "DENY",
                .cacheControl: "no-cache",
            ],
            body: .init(byteBuffer: ByteBuffer(string: asset.body)))
    }
}
