import Mustache

/// A compiled title/body pair. Rendering is plain text (no HTML escaping):
/// messages go to SMS, push and e-mail text bodies.
public struct MessageTemplate: Sendable {
    private let title: MustacheTemplate?
    private let body: MustacheTemplate

    public init(title: String?, body: String, path: String = "template") throws {
        self.title = try title.map { try Self.compile($0, path: "\(path).title") }
        self.body = try Self.compile(body, path: "\(path).body")
    }

    static func compile(_ source: String, path: String) throws -> MustacheTemplate {
        // Bounds first: swift-mustache compiles sections recursively (10 000 nested
        // sections overflow the stack) and slows down badly on very many tags.
        try TemplateLimits.check(source, path: path)
        do {
            return try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + source)
        } catch {
            throw ValidationError(path, "is not a valid Mustache template (\(error))")
        }
    }

    /// Variables: the recipient's fields, `attrs.*`, `data.*` and, for trigger
    /// events, `properties.*`. `data` is wrapped once per campaign.
    public func render(recipient: Recipient, data: JSONScope, properties: JSONScope? = nil) -> (title: String, body: String) {
        let scope = RecipientScope(recipient: recipient, data: data, properties: properties)
        return (title?.render(scope) ?? "", body.render(scope))
    }
}

/// What a template sees for one recipient, looked up by name when a tag asks:
/// no dictionary of every field is built per message.
struct RecipientScope: MustacheParent {
    let recipient: Recipient
    let data: JSONScope
    let properties: JSONScope?

    func child(named name: String) -> Any? {
        switch name {
        case "user_id": recipient.userID
        case "name": recipient.name
        case "phone": recipient.phone
        case "email": recipient.email
        case "push_token": recipient.pushToken
        case "locale": recipient.locale
        case "timezone": recipient.timezone
        case "attrs": JSONScope(recipient.attrs)
        case "data": data
        case "properties": properties
        default: nil
        }
    }
}

/// A JSON object as a template sees it: strings and numbers as text, booleans
/// for sections, arrays as lists, `null` as empty text, objects nested.
public struct JSONScope: MustacheParent, Sendable {
    let object: [String: JSONValue]

    public init(_ object: [String: JSONValue]) { self.object = object }

    public func child(named name: String) -> Any? { object[name].map(Self.bridge) }

    static func bridge(_ value: JSONValue) -> Any {
        switch value {
        case .object(let o): JSONScope(o)
        case .array(let a): a.map(bridge)
        case .bool(let b): b
        case .null: ""
        default: value.text
        }
    }
}

/// Everything a campaign decides per recipient, with no I/O: opt-outs,
/// routing with fallback, expiry, the message id and the rendered text.
public struct DeliveryPlanner: Sendable {
    public enum Plan: Sendable, Equatable {
        case send(OutboundMessage)
        case skip(reason: SkipReason, channel: String?)
    }

    public private(set) var campaignID: String
    public let router: ChannelRouter
    private let templates: [String: MessageTemplate]
    /// The task's `data`, and a trigger event's `properties` (`{{properties.*}}`), as templates see them.
    private let dataScope: JSONScope
    private var propertiesScope: JSONScope?
    private let addressFields: [String: AddressField]

    /// Compiles the template once per channel the campaign may use.
    public init(task: CampaignTask, addressFields: [String: AddressField]) throws {
        self.campaignID = task.campaignID
        self.router = task.router
        self.dataScope = JSONScope(task.data)
        self.propertiesScope = nil
        var templates: [String: MessageTemplate] = [:]
        for channel in Set(task.weights.map(\.channel) + task.fallback) {
            let (title, body) = task.template.sources(for: channel)
            let path = task.template.channels[channel] == nil ? "template" : "template.channels.\(channel)"
            templates[channel] = try MessageTemplate(title: title, body: body, path: path)
        }
        self.templates = templates
        self.addressFields = addressFields
    }

    /// The same compiled templates for another campaign id and event
    /// properties (a trigger rule compiles once, then plans each event).
    public func retargeted(campaignID: String, properties: [String: JSONValue]?) -> DeliveryPlanner {
        var copy = self
        copy.campaignID = campaignID
        copy.propertiesScope = properties.map(JSONScope.init)
        return copy
    }

    public func plan(_ recipient: Recipient) -> Plan {
        let decision = router.decide(campaignID: campaignID, userID: recipient.userID) { channel in
            if recipient.isOptedOut(of: channel) { return .optedOut }
            return recipient.field(addressField(channel)) == nil ? .noAddress : .available
        }
        switch decision {
        case .skip(let reason):
            return .skip(reason: reason, channel: nil)
        case .send(let channel):
            let (title, body) = templates[channel]!.render(recipient: recipient, data: dataScope, properties: propertiesScope)
            return .send(OutboundMessage(
                messageID: MessageID.make(campaignID: campaignID, userID: recipient.userID),
                campaignID: campaignID, userID: recipient.userID, channel: channel,
                to: recipient.field(addressField(channel))!, title: title, body: body))
        }
    }

    /// The message for a channel already chosen (a retry keeps its channel);
    /// nil when the recipient has no address for it any more.
    public func message(for recipient: Recipient, channel: String) -> OutboundMessage? {
        guard let template = templates[channel], let to = recipient.field(addressField(channel)) else { return nil }
        let (title, body) = template.render(recipient: recipient, data: dataScope, properties: propertiesScope)
        return OutboundMessage(messageID: MessageID.make(campaignID: campaignID, userID: recipient.userID),
                               campaignID: campaignID, userID: recipient.userID, channel: channel, to: to, title: title, body: body)
    }

    /// A further attempt on the channel chosen at the first one (a retry, a
    /// deferral or a replay keeps its channel): skipped when the recipient has
    /// opted out of it since, or has no address for it any more.
    public func plan(_ recipient: Recipient, on channel: String) -> Plan {
        if recipient.isOptedOut(of: channel) { return .skip(reason: .optedOut, channel: channel) }
        guard let message = message(for: recipient, channel: channel) else { return .skip(reason: .noAddress, channel: channel) }
        return .send(message)
    }

    func addressField(_ channel: String) -> AddressField {
        addressFields[channel] ?? AddressField.defaultField(forChannel: channel)
    }
}

/// Bounds a template source must keep before it is handed to swift-mustache,
/// checked by a flat scan that never recurses. A source over any of them is a
/// `ValidationError` naming its path (`template.body`, `template.channels.sms.title`).
public enum TemplateLimits {
    /// Bytes of UTF-8 per source (a title or a body): 64 KiB, far above any SMS, push or e-mail text.
    public static let maxSourceBytes = 65_536
    /// Tags (`{{…}}`, `{{{…}}}`, comments included) per source.
    public static let maxTags = 2_000
    /// Open sections (`{{#…}}`, `{{^…}}`, `{{$…}}`, `{{<…}}`) at any point.
    public static let maxDepth = 32

    /// Set-delimiter tags (`{{=<% %>=}}`) are refused: with other delimiters the
    /// scan could not see the tags, and messages have no need for them.
    public static func check(_ source: String, path: String) throws {
        let bytes = source.utf8
        guard bytes.count <= maxSourceBytes else {
            throw ValidationError(path, "template is \(bytes.count) bytes; at most \(maxSourceBytes) are allowed")
        }
        var tags = 0
        var depth = 0
        var copy = source
        try copy.withUTF8 { b in
            var i = 0
            let n = b.count
            while i + 1 < n {
                guard b[i] == UInt8(ascii: "{"), b[i + 1] == UInt8(ascii: "{") else { i += 1; continue }
                tags += 1
                guard tags <= maxTags else {
                    throw ValidationError(path, "template has more than \(maxTags) tags")
                }
                var j = i + 2
                let triple = j < n && b[j] == UInt8(ascii: "{")
                if triple { j += 1 }
                while j < n, b[j] == 0x20 || b[j] == 0x09 || b[j] == 0x0A || b[j] == 0x0D { j += 1 }
                let sigil: UInt8 = j < n ? b[j] : 0
                if !triple {
                    switch sigil {
                    case UInt8(ascii: "="):
                        throw ValidationError(path, "set-delimiter tags ({{=… …=}}) are not supported")
                    case UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "<"):
                        depth += 1
                        guard depth <= maxDepth else {
                            throw ValidationError(path, "template nests sections more than \(maxDepth) deep")
                        }
                    case UInt8(ascii: "/"):
                        depth = max(0, depth - 1)
                    default:
                        break
                    }
                }
                // Skip to the end of the tag; an unclosed tag is left for swift-mustache to report.
                var k = j
                while k + 1 < n, !(b[k] == UInt8(ascii: "}") && b[k + 1] == UInt8(ascii: "}")) { k += 1 }
                if k + 1 >= n { return }
                i = k + 2
                if triple, i < n, b[i] == UInt8(ascii: "}") { i += 1 }
            }
        }
    }
}
