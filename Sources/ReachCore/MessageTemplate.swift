import Mustache

/// A compiled title/body pair. Rendering is plain text (no HTML escaping):
/// messages go to SMS, push and e-mail text bodies. Each source is compiled by
/// swift-mustache (which validates it and is the reference) and, when it is only
/// text and variables, into a `TemplatePlan` too, which renders it without
/// swift-mustache's per-tag dynamic lookups.
public struct MessageTemplate: Sendable {
    struct Source: Sendable {
        let mustache: MustacheTemplate
        let plan: TemplatePlan?

        func render(_ recipient: Recipient, data: JSONScope, properties: JSONScope?) -> String {
            if let plan, let text = plan.render(recipient: recipient, data: data.object, properties: properties?.object) { return text }
            return mustache.render(RecipientScope(recipient: recipient, data: data, properties: properties))
        }

        var readsRecipient: Bool { plan?.readsRecipient ?? true }
        var readsProperties: Bool { plan?.readsProperties ?? true }
    }

    private let title: Source?
    private let body: Source

    public init(title: String?, body: String, path: String = "template") throws {
        self.title = try title.map { try Self.compile($0, path: "\(path).title") }
        self.body = try Self.compile(body, path: "\(path).body")
    }

    static func compile(_ source: String, path: String) throws -> Source {
        // Bounds first: swift-mustache compiles sections recursively (10 000 nested
        // sections overflow the stack) and slows down badly on very many tags.
        try TemplateLimits.check(source, path: path)
        do {
            let mustache = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + source)
            return Source(mustache: mustache, plan: TemplatePlan.compile(source).flatMap { verified($0, against: mustache) })
        } catch {
            throw ValidationError(path, "is not a valid Mustache template (\(error))")
        }
    }

    /// The plan, if swift-mustache lays out the same text around the same
    /// variables: both render once with a marker in place of every value, and
    /// must agree byte for byte. (swift-mustache drops the whitespace of a line
    /// it holds standalone, as the first line behind the content-type pragma;
    /// such a template keeps its swift-mustache rendering.)
    static func verified(_ plan: TemplatePlan, against mustache: MustacheTemplate) -> TemplatePlan? {
        plan.markedText == mustache.render(Marker(path: nil)) ? plan : nil
    }

    /// Answers every name with a marker of its path, rendered as `\u{1}path\u{2}`.
    struct Marker: MustacheParent, MustacheCustomRenderable {
        let path: String?
        func child(named name: String) -> Any? { Marker(path: path.map { "\($0).\(name)" } ?? name) }
        var renderText: String { "\u{1}\(path ?? "")\u{2}" }
        var isNull: Bool { false }
    }

    /// Variables: the recipient's fields, `attrs.*`, `data.*` and, for trigger
    /// events, `properties.*`. `data` is wrapped once per campaign.
    public func render(recipient: Recipient, data: JSONScope, properties: JSONScope? = nil) -> (title: String, body: String) {
        (title?.render(recipient, data: data, properties: properties) ?? "", body.render(recipient, data: data, properties: properties))
    }

    /// The same text for every recipient of a campaign (no recipient field, no
    /// event property is read): rendered once, by the planner.
    var isConstant: Bool {
        !body.readsRecipient && !body.readsProperties && !(title.map { $0.readsRecipient || $0.readsProperties } ?? false)
    }

    /// Whether the body renders through its plan (tests).
    var bodyHasPlan: Bool { body.plan != nil }

    /// Renders through swift-mustache only (the reference the plan is tested against).
    func renderWithMustache(recipient: Recipient, data: JSONScope, properties: JSONScope? = nil) -> (title: String, body: String) {
        let scope = RecipientScope(recipient: recipient, data: data, properties: properties)
        return (title?.mustache.render(scope) ?? "", body.mustache.render(scope))
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

    /// What every copy of a planner shares (a send carries its planner: one reference, not a dozen).
    final class Compiled: Sendable {
        let router: ChannelRouter
        /// The task's `data` as templates see it.
        let dataScope: JSONScope
        /// Per channel the campaign may use, all a message needs: one lookup per user.
        let channels: [String: ChannelPlan]

        struct ChannelPlan: Sendable {
            let field: AddressField
            let template: MessageTemplate
            /// The rendered text when the template reads no recipient field or event property.
            let constant: (title: String, body: String)?
        }

        init(router: ChannelRouter, templates: [String: MessageTemplate], dataScope: JSONScope, addressFields: [String: AddressField]) {
            (self.router, self.dataScope) = (router, dataScope)
            let nobody = Recipient(userID: "")
            self.channels = templates.reduce(into: [:]) { plans, entry in
                plans[entry.key] = ChannelPlan(field: addressFields[entry.key] ?? AddressField.defaultField(forChannel: entry.key),
                                               template: entry.value,
                                               constant: entry.value.isConstant ? entry.value.render(recipient: nobody, data: dataScope) : nil)
            }
        }
    }

    public private(set) var campaignID: String
    private let compiled: Compiled
    /// A trigger event's `properties` (`{{properties.*}}`), as templates see them.
    private var propertiesScope: JSONScope?

    public var router: ChannelRouter { compiled.router }

    /// The channels whose text was rendered once for the whole campaign.
    var constantChannels: [String] { compiled.channels.filter { $0.value.constant != nil }.keys.sorted() }

    /// Compiles the template once per channel the campaign may use.
    public init(task: CampaignTask, addressFields: [String: AddressField]) throws {
        self.campaignID = task.campaignID
        self.propertiesScope = nil
        var templates: [String: MessageTemplate] = [:]
        for channel in Set(task.weights.map(\.channel) + task.fallback) {
            let (title, body) = task.template.sources(for: channel)
            let path = task.template.channels[channel] == nil ? "template" : "template.channels.\(channel)"
            templates[channel] = try MessageTemplate(title: title, body: body, path: path)
        }
        self.compiled = Compiled(router: task.router, templates: templates, dataScope: JSONScope(task.data), addressFields: addressFields)
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
        var chosen: (channel: String, plan: Compiled.ChannelPlan, to: String)?
        let decision = compiled.router.decide(campaignID: campaignID, userID: recipient.userID) { channel in
            if recipient.isOptedOut(of: channel) { return .optedOut }
            guard let plan = compiled.channels[channel], let to = recipient.field(plan.field) else { return .noAddress }
            chosen = (channel, plan, to)
            return .available
        }
        switch decision {
        case .skip(let reason):
            return .skip(reason: reason, channel: nil)
        case .send:
            let c = chosen!
            return .send(message(recipient, channel: c.channel, plan: c.plan, to: c.to))
        }
    }

    func message(_ recipient: Recipient, channel: String, plan: Compiled.ChannelPlan, to: String) -> OutboundMessage {
        let (title, body) = plan.constant ?? plan.template.render(recipient: recipient, data: compiled.dataScope, properties: propertiesScope)
        return OutboundMessage(messageID: MessageID.make(campaignID: campaignID, userID: recipient.userID),
                               campaignID: campaignID, userID: recipient.userID, channel: channel, to: to, title: title, body: body)
    }

    /// The message for a channel already chosen (a retry keeps its channel);
    /// nil when the recipient has no address for it any more.
    public func message(for recipient: Recipient, channel: String) -> OutboundMessage? {
        guard let plan = compiled.channels[channel], let to = recipient.field(plan.field) else { return nil }
        return message(recipient, channel: channel, plan: plan, to: to)
    }

    /// A further attempt on the channel chosen at the first one (a retry, a
    /// deferral or a replay keeps its channel): skipped when the recipient has
    /// opted out of it since, or has no address for it any more.
    public func plan(_ recipient: Recipient, on channel: String) -> Plan {
        if recipient.isOptedOut(of: channel) { return .skip(reason: .optedOut, channel: channel) }
        guard let message = message(for: recipient, channel: channel) else { return .skip(reason: .noAddress, channel: channel) }
        return .send(message)
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
