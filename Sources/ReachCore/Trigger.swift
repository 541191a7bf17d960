import Foundation

/// A trigger event (SPEC §3.2).
public struct TriggerEvent: Sendable, Equatable {
    public var eventID: String
    public var event: String
    public var userID: String
    public var occurredAt: Date?
    public var properties: [String: JSONValue]

    /// The original JSON, kept for delayed sends and retries.
    public var json: String {
        var w = JSONObjectWriter()
        w.add("event_id", eventID)
        w.add("event", event)
        w.add("user_id", userID)
        if let occurredAt { w.add("occurred_at", RFC3339.format(occurredAt)) }
        w.add("properties", json: JSONValue.object(properties).jsonText)
        return w.finish()
    }

    public static func parse(_ bytes: [UInt8]) throws -> TriggerEvent {
        let json: JSONValue
        do {
            // Refuse what PostgreSQL would refuse (U+0000, numbers outside numeric): events are stored too.
            json = try JSONParser.parse(bytes, storable: true)
        } catch {
            throw ValidationError(error.path, "not valid JSON (\(error))")
        }
        guard let o = json.object else { throw ValidationError("", "an event must be a JSON object") }
        func id(_ key: String) throws -> String {
            guard let s = o[key]?.string, (1...256).contains(s.count) else { throw ValidationError(key, "is required: a string of 1-256 characters") }
            return s
        }
        let eventID = try id("event_id")
        let event = try id("event")
        let userID = try id("user_id")
        var occurredAt: Date?
        if let v = o["occurred_at"], !v.isNull {
            guard let s = v.string, let d = RFC3339.parse(s) else {
                throw ValidationError("occurred_at", "must be an RFC 3339 time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z")
            }
            occurredAt = d
        }
        var properties: [String: JSONValue] = [:]
        if let p = o["properties"], !p.isNull {
            guard let object = p.object else { throw ValidationError("properties", "must be an object") }
            properties = object
        }
        return TriggerEvent(eventID: eventID, event: event, userID: userID, occurredAt: occurredAt, properties: properties)
    }
}

/// A row of `reach.triggers`, validated like a campaign's channels and template.
public struct TriggerRule: Sendable, Equatable {
    public var id: String
    public var event: String
    public var weights: [ChannelRouter.Weight]
    public var fallback: [String]
    public var template: TemplateSpec
    public var delaySeconds: Int
    public var quietHours: Bool

    public init(id: String, event: String, channelsJSON: String, fallbackJSON: String, templateJSON: String,
                delaySeconds: Int, quietHours: Bool, channels: Set<String>) throws {
        let parser = TaskParser(channels: channels)
        func json(_ text: String, _ path: String) throws -> JSONValue {
            do {
                return try JSONParser.parse(text)
            } catch {
                throw ValidationError(path, "not valid JSON (\(error))")
            }
        }
        self.id = id
        self.event = event
        self.weights = try parser.weights(try json(channelsJSON, "channels"))
        self.fallback = try parser.fallback(try json(fallbackJSON, "fallback"))
        self.template = try parser.template(try json(templateJSON, "template"))
        self.delaySeconds = delaySeconds
        self.quietHours = quietHours
    }

    /// The campaign id of this rule's send for one event: `(event_id, rule)` is the idempotency unit.
    public func campaignID(for event: TriggerEvent) -> String { "t:\(id):\(event.eventID)" }

    /// The one-recipient campaign that sends this rule's message for `event`.
    public func task(for event: TriggerEvent) -> CampaignTask {
        CampaignTask(campaignID: campaignID(for: event), name: nil, segment: .userIDs([event.userID]), weights: weights,
                     fallback: fallback, template: template, data: [:], schedule: .now, expiresAt: nil, quietHours: quietHours)
    }
}
