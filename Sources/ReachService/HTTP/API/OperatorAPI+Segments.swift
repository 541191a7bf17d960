import ReachCore
import ReachPostgres

extension OperatorAPI {
    var segmentRoutes: [APIRoute] {
        [APIRoute(.post, "/v1/segments/preview", .read, "Count a segment and sample up to 20 user ids; sends nothing") { try await preview($0) }]
    }

    /// Rule values are bound as parameters (SPEC §4.3): SQL in a value is
    /// compared as text, never run. The count runs under `statement_timeout`.
    func preview(_ request: APIRequest) async throws -> APIReply {
        let body = try request.jsonObject(allowed: ["segment"])
        let selector = try parser.segment(body["segment"])
        let source = SegmentSource(client: postgres)
        let (count, sample) = try await source.preview(try await source.resolve(selector), sample: 20, timeout: previewTimeout)
        return APIReply(.ok, Self.object([("count", "\(count)"), ("sample", "[" + sample.map(JSONText.quote).joined(separator: ",") + "]")]))
    }
}
