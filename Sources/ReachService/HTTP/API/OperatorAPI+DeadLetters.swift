import ReachCore
import ReachPostgres

extension OperatorAPI {
    var deadLetterRoutes: [APIRoute] {
        [
            APIRoute(.get, "/v1/dead-letters", .read, "List dead letters, newest first") { try await listDeadLetters($0) },
            APIRoute(.post, "/v1/dead-letters/replay", .write, "Re-queue dead deliveries (by ids or filters)") { try await replayDeadLetters($0) },
        ]
    }

    func listDeadLetters(_ request: APIRequest) async throws -> APIReply {
        let source = request.queryString("source")
        if let source, source != "delivery", source != "input" { throw APIError.badRequest("source must be delivery or input", field: "source") }
        let limit = try request.limit()
        let letters = try await DeadLetterStore(client: postgres).list(
            campaignID: request.queryString("campaign"), channel: request.queryString("channel"), since: try request.time("since"),
            source: source, before: try request.idCursor(), limit: limit)
        return .list(letters.map(Self.deadLetterJSON), next: Self.next(letters, limit: limit) { String($0.id) })
    }

    /// The same replay as `reachd dlq replay`; at least one selector, so an empty body never replays everything by accident.
    func replayDeadLetters(_ request: APIRequest) async throws -> APIReply {
        let body = try request.jsonObject(allowed: ["ids", "campaign", "channel", "since", "limit", "all"])
        func text(_ key: String) throws -> String? {
            guard let value = body[key], !value.isNull else { return nil }
            guard let s = value.string, !s.isEmpty else { throw APIError.badRequest("\(key) must be a non-empty string", field: key) }
            return s
        }
        var ids: [Int]?
        if let value = body["ids"], !value.isNull {
            guard let items = value.array, !items.isEmpty, items.count <= 10_000 else {
                throw APIError.badRequest("ids must be an array of 1-10000 dead letter ids", field: "ids")
            }
            ids = try items.enumerated().map { i, item in
                guard let n = item.integer, n > 0 else { throw APIError.badRequest("ids[\(i)] must be a positive whole number", field: "ids[\(i)]") }
                return n
            }
        }
        var since: String?
        if let s = try text("since") {
            guard let date = RFC3339.parse(s) else { throw APIError.badRequest("since must be an RFC 3339 time", field: "since") }
            since = RFC3339.format(date)
        }
        let limit = body["limit"]?.integer ?? 10_000
        guard (1...100_000).contains(limit) else { throw APIError.badRequest("limit must be from 1 to 100000", field: "limit") }
        let filter = DeadLetterStore.ReplayFilter(campaignID: try text("campaign"), channel: try text("channel"), since: since, ids: ids, limit: limit)
        let everything = body["all"]?.bool == true
        guard everything || filter.campaignID != nil || filter.channel != nil || filter.since != nil || filter.ids != nil else {
            throw APIError.badRequest("name what to replay: ids, campaign, channel or since (or \"all\": true)")
        }
        let count = try await replay.replay(filter)
        return APIReply(.ok, Self.object([("replayed", "\(count)")]), target: filter.campaignID ?? filter.ids.map { $0.map(String.init).joined(separator: ",") })
    }

    static func deadLetterJSON(_ d: DeadLetterStore.Letter) -> String {
        var w = JSONObjectWriter(capacity: 256 + (d.payloadJSON?.utf8.count ?? 0))
        w.add("id", d.id)
        w.add("reason", d.reason)
        w.add("error", d.error)
        w.add("source", d.source)
        w.add("campaign_id", d.campaignID)
        w.add("user_id", d.userID)
        w.add("channel", d.channel)
        w.add("attempts", d.attempts)
        w.add("failed_at", d.failedAt)
        w.add("replayed_at", d.replayedAt)
        w.add("topic", d.topic)
        w.add("partition", json: d.partition.map(String.init) ?? "null")
        w.add("offset", json: d.offset.map(String.init) ?? "null")
        w.add("payload", json: d.payloadJSON ?? "null")
        return w.finish()
    }
}
