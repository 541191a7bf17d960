import Foundation

/// Parses and validates task JSON against SPEC §3.1. Every refusal is a
/// `ValidationError` naming the field; unknown fields are ignored.
public struct TaskParser: Sendable {
    /// Channel names the configuration defines.
    public let channels: Set<String>
    /// Whether a campaign task may carry a run id (`<id>@<time>`): true for
    /// the tasks reachd stored itself (a recurring campaign's runs), false at
    /// intake, so nobody can publish a run ahead of its series. Control
    /// messages always may: a single run can be paused or cancelled.
    public let acceptsRunIDs: Bool

    public init(channels: Set<String>, acceptsRunIDs: Bool = false) {
        self.channels = channels
        self.acceptsRunIDs = acceptsRunIDs
    }

    public func parse(_ bytes: [UInt8]) throws -> TaskMessage {
        let json: JSONValue
        do {
            // Stored whole as jsonb: refuse what PostgreSQL would refuse (U+0000, numbers outside numeric).
            json = try JSONParser.parse(bytes, storable: true)
        } catch {
            throw ValidationError(error.path, "not valid JSON (\(error))")
        }
        return try parse(json)
    }

    public func parse(_ json: JSONValue) throws -> TaskMessage {
        guard let object = json.object else { throw ValidationError("", "a task must be a JSON object") }
        guard let kind = object["kind"]?.string else { throw ValidationError("kind", "is required: campaign, pause, resume or cancel") }
        let id = try Self.campaignID(object["campaign_id"], allowRun: kind != "campaign" || acceptsRunIDs)
        switch kind {
        case "campaign": return .campaign(try campaign(object, id: id))
        case "pause": return .pause(campaignID: id)
        case "resume": return .resume(campaignID: id)
        case "cancel": return .cancel(campaignID: id)
        default: throw ValidationError("kind", "unknown kind '\(kind)'; use campaign, pause, resume or cancel")
        }
    }

    static func campaignID(_ value: JSONValue?, allowRun: Bool = false) throws -> String {
        guard let id = value?.string else { throw ValidationError("campaign_id", "is required (a string)") }
        if id.contains("@") {
            guard allowRun, let run = CampaignRun.parse(id) else {
                throw ValidationError("campaign_id", "must be 1-128 characters of A-Z a-z 0-9 . _ : - ('@' marks the runs of a recurring campaign, which reachd creates itself)")
            }
            _ = try campaignID(.string(run.parent))
            return id
        }
        let allowed = id.unicodeScalars.allSatisfy { s in
            (s.value >= 48 && s.value <= 57) || (s.value >= 65 && s.value <= 90) || (s.value >= 97 && s.value <= 122)
                || s == "." || s == "_" || s == ":" || s == "-"
        }
        guard (1...128).contains(id.count), allowed else {
            throw ValidationError("campaign_id", "must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        }
        return id
    }

    func campaign(_ o: [String: JSONValue], id: String) throws -> CampaignTask {
        var name: String?
        if let n = o["name"], !n.isNull {
            guard let s = n.string else { throw ValidationError("name", "must be a string") }
            name = s
        }
        let segment = try self.segment(o["segment"])
        let weights = try self.weights(o["channels"])
        let fallback = try self.fallback(o["fallback"])
        let template = try self.template(o["template"])
        var data: [String: JSONValue] = [:]
        if let d = o["data"], !d.isNull {
            guard let object = d.object else { throw ValidationError("data", "must be an object") }
            data = object
        }
        let schedule = try self.schedule(o["schedule"])
        var expiresAt: Date?
        if let e = o["expires_at"], !e.isNull {
            expiresAt = try Self.date(e, path: "expires_at")
            if case .at(let at) = schedule, let expiresAt, expiresAt <= at {
                throw ValidationError("expires_at", "must be after schedule.at")
            }
            // For schedule.cron it ends the series (no run at or after it); not
            // checked against the clock here, since stored tasks are parsed again later.
        }
        var quietHours = true
        if let q = o["quiet_hours"], !q.isNull {
            guard let b = q.bool else { throw ValidationError("quiet_hours", "must be true or false") }
            quietHours = b
        }
        return CampaignTask(campaignID: id, name: name, segment: segment, weights: weights, fallback: fallback,
                            template: template, data: data, schedule: schedule, expiresAt: expiresAt, quietHours: quietHours)
    }

    public func segment(_ value: JSONValue?) throws -> SegmentSelector {
        guard let o = value?.object else { throw ValidationError("segment", "is required: {\"id\"}, {\"user_ids\"} or {\"rule\"}") }
        let forms = ["id", "user_ids", "rule"].filter { o[$0] != nil }
        guard forms.count == 1 else {
            throw ValidationError("segment", "needs exactly one of id, user_ids, rule; found \(forms.isEmpty ? "none" : forms.joined(separator: ", "))")
        }
        switch forms[0] {
        case "id":
            guard let id = o["id"]?.string, !id.isEmpty else { throw ValidationError("segment.id", "must be a non-empty string") }
            return .id(id)
        case "user_ids":
            guard let items = o["user_ids"]?.array else { throw ValidationError("segment.user_ids", "must be an array of strings") }
            guard !items.isEmpty, items.count <= SegmentSelector.maxUserIDs else {
                throw ValidationError("segment.user_ids", "must hold 1-\(SegmentSelector.maxUserIDs) user ids, got \(items.count)")
            }
            var ids: [String] = []
            var seen: Set<String> = []
            for (i, item) in items.enumerated() {
                guard let s = item.string, !s.isEmpty else { throw ValidationError("segment.user_ids[\(i)]", "must be a non-empty string") }
                if seen.insert(s).inserted { ids.append(s) }
            }
            return .userIDs(ids)
        default:
            return .rule(try SegmentRule.parse(o["rule"]!, path: "segment.rule"))
        }
    }

    func weights(_ value: JSONValue?) throws -> [ChannelRouter.Weight] {
        guard let o = value?.object, !o.isEmpty else {
            throw ValidationError("channels", "is required: an object of channel weights, e.g. {\"sms\": 70, \"push\": 30}")
        }
        var weights: [ChannelRouter.Weight] = []
        for name in o.keys.sorted() {
            guard channels.contains(name) else {
                throw ValidationError("channels.\(name)", "is not a configured channel (configured: \(channels.sorted().joined(separator: ", ")))")
            }
            guard let w = o[name]!.integer, w >= 0 else { throw ValidationError("channels.\(name)", "weight must be a non-negative integer") }
            weights.append(.init(name, w))
        }
        guard weights.contains(where: { $0.weight > 0 }) else { throw ValidationError("channels", "weights must have a positive sum") }
        return weights
    }

    func fallback(_ value: JSONValue?) throws -> [String] {
        guard let value, !value.isNull else { return [] }
        guard let items = value.array else { throw ValidationError("fallback", "must be an array of channel names") }
        var names: [String] = []
        for (i, item) in items.enumerated() {
            guard let name = item.string, channels.contains(name) else {
                throw ValidationError("fallback[\(i)]", "must be a configured channel (configured: \(channels.sorted().joined(separator: ", ")))")
            }
            guard !names.contains(name) else { throw ValidationError("fallback[\(i)]", "'\(name)' is listed twice") }
            names.append(name)
        }
        return names
    }

    func template(_ value: JSONValue?) throws -> TemplateSpec {
        guard let o = value?.object else { throw ValidationError("template", "is required: {\"title\", \"body\", \"channels\"}") }
        func optionalString(_ key: String, in object: [String: JSONValue], path: String) throws -> String? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let s = v.string else { throw ValidationError(path, "must be a string") }
            return s
        }
        let title = try optionalString("title", in: o, path: "template.title")
        guard let body = try optionalString("body", in: o, path: "template.body") else {
            throw ValidationError("template.body", "is required")
        }
        var overrides: [String: TemplateSpec.Parts] = [:]
        if let c = o["channels"], !c.isNull {
            guard let object = c.object else { throw ValidationError("template.channels", "must be an object of per-channel overrides") }
            for (channel, value) in object {
                guard channels.contains(channel) else {
                    throw ValidationError("template.channels.\(channel)", "is not a configured channel")
                }
                guard let parts = value.object else { throw ValidationError("template.channels.\(channel)", "must be an object with title and/or body") }
                overrides[channel] = .init(
                    title: try optionalString("title", in: parts, path: "template.channels.\(channel).title"),
                    body: try optionalString("body", in: parts, path: "template.channels.\(channel).body"))
            }
        }
        let spec = TemplateSpec(title: title, body: body, channels: overrides)
        // Compiled here, so a template that cannot render is refused with the task
        // (or the trigger rule), not found when the first message is due.
        _ = try MessageTemplate(title: title, body: body, path: "template")
        for channel in overrides.keys {
            let (t, b) = spec.sources(for: channel)
            _ = try MessageTemplate(title: t, body: b, path: "template.channels.\(channel)")
        }
        return spec
    }

    static let scheduleForms = #"must be {"at": RFC 3339}, {"delay_seconds": n} or {"cron": "0 9 * * 1", "timezone": "Asia/Shanghai"}"#

    func schedule(_ value: JSONValue?) throws -> CampaignSchedule {
        guard let value, !value.isNull else { return .now }
        guard let o = value.object else { throw ValidationError("schedule", Self.scheduleForms) }
        if let cron = o["cron"] {
            guard Set(o.keys).isSubset(of: ["cron", "timezone"]) else {
                throw ValidationError("schedule", "takes cron with an optional timezone, nothing else: \(Self.scheduleForms)")
            }
            return .cron(try Self.cron(cron, timezone: o["timezone"]))
        }
        guard o.count == 1 else { throw ValidationError("schedule", Self.scheduleForms) }
        if let at = o["at"] { return .at(try Self.date(at, path: "schedule.at")) }
        if let delay = o["delay_seconds"] {
            guard let n = delay.integer, n >= 0, n <= 366 * 86_400 else {
                throw ValidationError("schedule.delay_seconds", "must be a whole number of seconds from 0 to one year")
            }
            return .delay(seconds: n)
        }
        throw ValidationError("schedule", Self.scheduleForms)
    }

    /// The canonical IANA zone names of the system's database.
    static let zoneNames = Set(TimeZone.knownTimeZoneIdentifiers)

    /// An IANA name: canonical, or an alias shaped like one (`Etc/UTC`,
    /// `US/Eastern`) that the database knows. Abbreviations such as `EST` and
    /// anything path-like are refused before any lookup.
    static func isZoneName(_ name: String) -> Bool {
        if name == "UTC" || zoneNames.contains(name) { return true }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count >= 2 && parts.allSatisfy { part in
            !part.isEmpty && part.first!.isLetter && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) }
        }
    }

    /// `schedule.cron` in `schedule.timezone`: an IANA zone name, UTC when absent
    /// (not the quiet-hours zone: a stored task must mean the same under any configuration).
    static func cron(_ expression: JSONValue, timezone: JSONValue?) throws -> CronSchedule {
        var zone = TimeZone(identifier: "UTC")!
        if let timezone, !timezone.isNull {
            guard let name = timezone.string, Self.isZoneName(name), let named = TimeZone(identifier: name) else {
                throw ValidationError("schedule.timezone", "must be an IANA time zone name such as \"Asia/Shanghai\" or \"UTC\"")
            }
            zone = named
        }
        guard let text = expression.string else {
            throw ValidationError("schedule.cron", "must be a string of five fields, e.g. \"0 9 * * 1\"")
        }
        return try CronSchedule(text, timeZone: zone)
    }

    static func date(_ value: JSONValue, path: String) throws -> Date {
        guard let text = value.string, let date = RFC3339.parse(text) else {
            throw ValidationError(path, "must be an RFC 3339 time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, such as 2026-11-23T09:00:00Z")
        }
        return date
    }
}
