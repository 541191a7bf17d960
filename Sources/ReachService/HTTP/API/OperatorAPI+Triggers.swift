import Hummingbird
import ReachCore
import ReachPostgres

extension OperatorAPI {
    static let triggerFields: Set<String> = ["id", "event", "channels", "fallback", "template", "delay_seconds", "quiet_hours", "enabled"]

    var triggerRoutes: [APIRoute] {
        [
            APIRoute(.get, "/v1/triggers", .read, "List trigger rules in id order") { try await listTriggers($0) },
            APIRoute(.post, "/v1/triggers", .write, "Create a trigger rule") { try await createTrigger($0) },
            APIRoute(.get, "/v1/triggers/{id}", .read, "One trigger rule") { try await showTrigger($0) },
            APIRoute(.put, "/v1/triggers/{id}", .write, "Replace (or create) a trigger rule") { try await putTrigger($0) },
            APIRoute(.delete, "/v1/triggers/{id}", .write, "Delete a trigger rule") { try await deleteTrigger($0) },
        ]
    }

    var triggers: TriggerStore { TriggerStore(client: postgres) }

    func listTriggers(_ request: APIRequest) async throws -> APIReply {
        let limit = try request.limit()
        let rows = try await triggers.list(event: request.queryString("event"), after: request.queryString("after"), limit: limit)
        return .list(rows.map(Self.triggerJSON), next: Self.next(rows, limit: limit) { $0.id })
    }

    func showTrigger(_ request: APIRequest) async throws -> APIReply {
        let id = request.parameter("id")
        guard let row = try await triggers.get(id) else { throw APIError.notFound("trigger '\(id)' does not exist") }
        return APIReply(.ok, Self.triggerJSON(row))
    }

    func createTrigger(_ request: APIRequest) async throws -> APIReply {
        let rule = try triggerRow(request.jsonObject(allowed: Self.triggerFields), id: nil)
        guard let row = try await triggers.create(rule) else { throw APIError.conflict("trigger '\(rule.id)' exists; PUT /v1/triggers/\(rule.id) replaces it") }
        try await rules?.reload()
        var headers = HTTPFields()
        headers[.location] = "/v1/triggers/\(row.id)"
        return APIReply(.created, Self.triggerJSON(row), headers: headers, target: row.id)
    }

    func putTrigger(_ request: APIRequest) async throws -> APIReply {
        let id = request.parameter("id")
        let (row, created) = try await triggers.put(try triggerRow(request.jsonObject(allowed: Self.triggerFields), id: id))
        try await rules?.reload()
        return APIReply(created ? .created : .ok, Self.triggerJSON(row), target: id)
    }

    func deleteTrigger(_ request: APIRequest) async throws -> APIReply {
        let id = request.parameter("id")
        guard try await triggers.delete(id) else { throw APIError.notFound("trigger '\(id)' does not exist") }
        try await rules?.reload()
        return APIReply(.ok, Self.object([("id", JSONText.quote(id)), ("deleted", "true")]), target: id)
    }

    /// Validates a rule the way the trigger pipeline loads it (channels,
    /// fallback, templates compiled), so nothing stored is later ignored.
    func triggerRow(_ body: [String: JSONValue], id pathID: String?) throws -> TriggerStore.Row {
        let id: String
        switch (body["id"], pathID) {
        case (nil, let path?): id = path
        case (let value?, nil):
            guard let s = value.string else { throw APIError.badRequest("id must be a string", field: "id") }
            id = s
        case (let value?, let path?):
            guard value.string == path else { throw APIError.badRequest("id in the body must match the path ('\(path)')", field: "id") }
            id = path
        case (nil, nil): throw APIError.badRequest("id is required", field: "id")
        }
        let idOK = (1...100).contains(id.count) && id.unicodeScalars.allSatisfy {
            ($0.properties.isASCIIHexDigit || ($0.value >= 65 && $0.value <= 90) || ($0.value >= 97 && $0.value <= 122)
             || "._-".unicodeScalars.contains($0))
        }
        guard idOK else { throw APIError.badRequest("id must be 1-100 characters of A-Z a-z 0-9 . _ -", field: "id") }
        guard let event = body["event"]?.string, (1...256).contains(event.count) else {
            throw APIError.badRequest("event is required: a string of 1-256 characters", field: "event")
        }
        let delay = body["delay_seconds"] ?? .number(0)
        guard let delaySeconds = delay.integer, (0...31_536_000).contains(delaySeconds) else {
            throw APIError.badRequest("delay_seconds must be a whole number from 0 to one year", field: "delay_seconds")
        }
        func flag(_ key: String) throws -> Bool {
            guard let value = body[key], !value.isNull else { return true }
            guard let b = value.bool else { throw APIError.badRequest("\(key) must be true or false", field: key) }
            return b
        }
        let channelsJSON = (body["channels"] ?? .null).jsonText
        let fallbackJSON = (body["fallback"] ?? .array([])).jsonText
        let templateJSON = (body["template"] ?? .null).jsonText
        let row = TriggerStore.Row(id: id, event: event, channelsJSON: channelsJSON, fallbackJSON: fallbackJSON, templateJSON: templateJSON,
                                   delaySeconds: delaySeconds, quietHours: try flag("quiet_hours"), enabled: try flag("enabled"))
        _ = try TriggerRule(id: id, event: event, channelsJSON: channelsJSON, fallbackJSON: fallbackJSON, templateJSON: templateJSON,
                            delaySeconds: delaySeconds, quietHours: row.quietHours, channels: parser.channels)
        return row
    }

    static func triggerJSON(_ r: TriggerStore.Row) -> String {
        var w = JSONObjectWriter()
        w.add("id", r.id)
        w.add("event", r.event)
        w.add("channels", json: r.channelsJSON)
        w.add("fallback", json: r.fallbackJSON)
        w.add("template", json: r.templateJSON)
        w.add("delay_seconds", r.delaySeconds)
        w.add("quiet_hours", json: r.quietHours ? "true" : "false")
        w.add("enabled", json: r.enabled ? "true" : "false")
        w.add("updated_at", r.updatedAt)
        return w.finish()
    }
}
