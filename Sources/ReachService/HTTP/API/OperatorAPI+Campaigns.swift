import Foundation
import Hummingbird
import ReachCore
import ReachPostgres

extension OperatorAPI {
    static let campaignStates = Set(CampaignState.allCases.map(\.rawValue))
    static let taskFields: Set<String> = ["kind", "campaign_id", "name", "segment", "channels", "fallback", "template", "data",
                                          "schedule", "expires_at", "quiet_hours"]

    var campaignRoutes: [APIRoute] {
        [
            APIRoute(.post, "/v1/campaigns", .write, "Create a campaign: validate the task and publish it on the tasks topic") { try await create($0) },
            APIRoute(.get, "/v1/campaigns", .read, "List campaigns, newest first") { try await list($0) },
            APIRoute(.get, "/v1/campaigns/{id}", .read, "A campaign's state, counters and progress") { try await show($0) },
            APIRoute(.post, "/v1/campaigns/{id}/pause", .write, "Pause: no new provider requests within 2 s") { try await control($0, .pause) },
            APIRoute(.post, "/v1/campaigns/{id}/resume", .write, "Resume where it stopped") { try await control($0, .resume) },
            APIRoute(.post, "/v1/campaigns/{id}/cancel", .write, "Cancel: remaining users end skipped/cancelled") { try await control($0, .cancel) },
        ]
    }

    /// Strict about shape (unknown fields are typos here, unlike on Kafka
    /// where SPEC says they are ignored), then the same `TaskParser` as intake.
    func create(_ request: APIRequest) async throws -> APIReply {
        var object = try request.jsonObject(allowed: Self.taskFields)
        if let kind = object["kind"], kind.string != "campaign" {
            throw APIError.badRequest("kind must be absent or \"campaign\" (controls have their own routes)", field: "kind")
        }
        for (field, allowed) in [("segment", ["id", "user_ids", "rule"]), ("schedule", ["at", "delay_seconds", "cron", "timezone"]),
                                 ("template", ["title", "body", "channels"])] {
            if let nested = object[field]?.object { try APIRequest.refuseUnknown(nested, allowed: Set(allowed), path: field) }
        }
        for (channel, parts) in object["template"]?.object?["channels"]?.object ?? [:] {
            if let parts = parts.object { try APIRequest.refuseUnknown(parts, allowed: ["title", "body"], path: "template.channels.\(channel)") }
        }
        object["kind"] = .string("campaign")
        let json = JSONValue.object(object)
        guard case .campaign(let task) = try parser.parse(json) else { throw APIError.badRequest("not a campaign task") }
        var headers = HTTPFields()
        headers[.location] = "/v1/campaigns/\(task.campaignID)"
        if let existing = try await campaigns.summary(task.campaignID) {
            // Publishing the same id again is a no-op (SPEC §3.1); say so rather than publish.
            return APIReply(.accepted, Self.object([("campaign_id", JSONText.quote(task.campaignID)), ("existing", "true"),
                                                    ("state", JSONText.quote(existing.state))]),
                            headers: headers, target: task.campaignID)
        }
        let report = try await producer.send(topic: tasksTopic, key: Array(task.campaignID.utf8), value: Array(json.jsonText.utf8))
        return APIReply(.accepted, Self.object([
            ("campaign_id", JSONText.quote(task.campaignID)), ("existing", "false"), ("state", JSONText.quote("accepted")),
            ("topic", JSONText.quote(report.topic)), ("partition", "\(report.partition)"), ("offset", "\(report.offset)"),
        ]), headers: headers, target: task.campaignID)
    }

    func list(_ request: APIRequest) async throws -> APIReply {
        let state = request.queryString("state")
        if let state, !Self.campaignStates.contains(state) {
            throw APIError.badRequest("state must be one of \(Self.campaignStates.sorted().joined(separator: ", "))", field: "state")
        }
        var after: String?
        if let cursor = request.queryString("after") {
            guard let decoded = Self.decodeCursor(cursor) else { throw APIError.badRequest("after must be a cursor from a previous page's next", field: "after") }
            after = decoded
        }
        let limit = try request.limit()
        let items = try await campaigns.list(state: state, since: try request.time("since"), parent: request.queryString("parent"),
                                             after: after, limit: limit)
        return .list(items.map { Self.campaignJSON($0, breakdown: nil) },
                     next: Self.next(items, limit: limit) { Self.encodeCursor($0.cursor) })
    }

    func show(_ request: APIRequest) async throws -> APIReply {
        let id = request.parameter("id")
        let store = campaigns
        guard let summary = try await summaries.run(id, { try await store.summary(id) }) else {
            throw APIError.notFound("campaign '\(id)' does not exist (a task just published appears once reach.tasks is consumed)")
        }
        // Keyed by state too: a campaign that just paused or finished is counted afresh, not served from before.
        let breakdown = try await breakdowns.get("\(id)|\(summary.state)|\(summary.finishedAt ?? "")") { try await store.breakdown(id) }
        let shards = summary.shards > 0 ? try await CampaignShardStore(client: postgres).progress(id) : nil
        return APIReply(.ok, Self.campaignJSON(summary, breakdown: breakdown, shards: shards))
    }

    func control(_ request: APIRequest, _ control: CampaignStore.Control) async throws -> APIReply {
        let id = request.parameter("id")
        defer { summaries.forget(id) }
        switch try await controls.apply(id, control) {
        case .applied(let state):
            return APIReply(.ok, Self.object([("campaign_id", JSONText.quote(id)), ("state", JSONText.quote(state))]), target: id)
        case .unknown:
            throw APIError.notFound("campaign '\(id)' does not exist")
        case .refused(let state):
            let allowed = switch control {
            case .pause: "scheduled or running"
            case .resume: "paused"
            case .cancel: "scheduled, running or paused"
            }
            throw APIError.conflict("campaign '\(id)' is \(state); \(control.rawValue) applies to a campaign that is \(allowed)")
        }
    }

    static func encodeCursor(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeCursor(_ cursor: String) -> String? {
        var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), let text = String(data: data, encoding: .utf8), text.contains("|"),
              RFC3339.parse(String(text[..<text.firstIndex(of: "|")!])) != nil else { return nil }
        return text
    }

    /// A campaign as the API shows it; `breakdown` (the detail view) adds
    /// per-status, per-reason and per-channel counts from its delivery rows,
    /// and `shards` how far the shards of a campaign cut into them are.
    static func campaignJSON(_ s: CampaignStore.Summary, breakdown: [CampaignStore.Breakdown]?,
                             shards: CampaignShardStore.Progress? = nil) -> String {
        var w = JSONObjectWriter(capacity: 512)
        w.add("id", s.id)
        w.add("name", s.name)
        w.add("state", s.state)
        w.add("error", s.error)
        w.add("created_at", s.createdAt)
        w.add("scheduled_at", s.scheduledAt)
        w.add("expires_at", s.expiresAt)
        w.add("started_at", s.startedAt)
        w.add("finished_at", s.finishedAt)
        w.add("recurring", json: s.recurring ? "true" : "false")
        w.add("parent_id", s.parentID)
        let c = s.counters
        w.add("counters", json: object([("targeted", "\(c.targeted)"), ("sent", "\(c.sent)"), ("skipped", "\(c.skipped)"),
                                        ("failed", "\(c.failed)"), ("dead", "\(c.dead)")]))
        let finished = s.finishedAt != nil
        var done = c.sent + c.skipped + c.dead
        var rows = c.targeted
        if let breakdown {
            var statuses: [String: Int] = [:]
            var reasons: [String: Int] = [:]
            var byChannel: [String: [String: Int]] = [:]
            for b in breakdown {
                statuses[b.status, default: 0] += b.count
                if let reason = b.reason, let status = DeliveryStatus(rawValue: b.status), status == .skipped || status == .dead { reasons["\(b.status)/\(reason)", default: 0] += b.count }
                byChannel[b.channel ?? "none", default: [:]][b.status, default: 0] += b.count
            }
            func counts(_ d: [String: Int]) -> String { object(d.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }) }
            w.add("statuses", json: counts(statuses))
            w.add("reasons", json: counts(reasons))
            w.add("channels", json: object(byChannel.sorted { $0.key < $1.key }.map { ($0.key, counts($0.value)) }))
            done = [DeliveryStatus.sent, .skipped, .dead].reduce(0) { $0 + (statuses[$1.rawValue] ?? 0) }
            rows = statuses.values.reduce(0, +)
        }
        if let shards {
            w.add("shards", json: object([("total", "\(shards.total)"), ("done", "\(shards.done)"), ("running", "\(shards.running)")]))
        }
        // The total is known once the run ended, or up front for a listed segment
        // or a campaign cut into shards (its users were counted then).
        let total: Int? = finished ? max(c.targeted, rows) : s.listed ?? s.planned
        w.add("progress", json: object([("done", "\(done)"), ("rows", "\(rows)"), ("total", total.map(String.init) ?? "null")]))
        let rate = s.runSeconds.map { $0 > 0 ? Double(done) / $0 : 0 }
        w.add("throughput_per_second", json: rate.map { String(format: "%.1f", $0) } ?? "null")
        return w.finish()
    }
}
