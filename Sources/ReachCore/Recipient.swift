/// One user as the pipeline sees them: contact fields, attributes, and the
/// channels they opted out of (`*` = all).
public struct Recipient: Sendable, Equatable {
    public var userID: String
    public var name: String?
    public var phone: String?
    public var email: String?
    public var pushToken: String?
    public var timezone: String?
    public var locale: String?
    public var attrs: [String: JSONValue]
    public var optedOut: Set<String>

    public init(userID: String, name: String? = nil, phone: String? = nil, email: String? = nil, pushToken: String? = nil,
                timezone: String? = nil, locale: String? = nil, attrs: [String: JSONValue] = [:], optedOut: Set<String> = []) {
        self.userID = userID
        self.name = name
        self.phone = phone
        self.email = email
        self.pushToken = pushToken
        self.timezone = timezone
        self.locale = locale
        self.attrs = attrs
        self.optedOut = optedOut
    }

    public func isOptedOut(of channel: String) -> Bool {
        !optedOut.isEmpty && (optedOut.contains(channel) || optedOut.contains("*"))
    }

    /// The value of a recipient field by its column name.
    public func field(_ name: AddressField) -> String? {
        let value: String? = switch name {
        case .phone: phone
        case .email: email
        case .pushToken: pushToken
        case .userID: userID
        }
        guard let value, !value.isEmpty else { return nil }
        return value
    }
}

/// Which recipient field a channel delivers to (SPEC §6's address column).
public enum AddressField: String, Sendable, CaseIterable {
    case phone
    case email
    case pushToken = "push_token"
    case userID = "user_id"

    /// The SPEC's field for the built-in channel names; other channels default to `user_id`.
    public static func defaultField(forChannel channel: String) -> AddressField {
        switch channel {
        case "sms": .phone
        case "email": .email
        case "push": .pushToken
        default: .userID
        }
    }
}

/// A message ready for a provider.
///
/// A class, not a struct: a message passes through a dozen arrays and steps
/// (attempts, batches, outcomes, rows), and each copy of a struct of seven
/// strings retained and released seven strings; a reference is one count.
/// It never changes once made.
public final class OutboundMessage: Sendable, Equatable {
    public let messageID: String
    public let campaignID: String
    public let userID: String
    public let channel: String
    public let to: String
    public let title: String
    public let body: String

    public static func == (a: OutboundMessage, b: OutboundMessage) -> Bool {
        a === b || (a.messageID == b.messageID && a.campaignID == b.campaignID && a.userID == b.userID && a.channel == b.channel
            && a.to == b.to && a.title == b.title && a.body == b.body)
    }

    public init(messageID: String, campaignID: String, userID: String, channel: String, to: String, title: String, body: String) {
        self.messageID = messageID
        self.campaignID = campaignID
        self.userID = userID
        self.channel = channel
        self.to = to
        self.title = title
        self.body = body
    }
}

extension OutboundMessage {
    /// The message as SPEC §6's JSON object; `maskAddress` masks `to` for files meant for reading,
    /// and `maskContent` also masks the personal numbers and addresses a template rendered into the
    /// title and body (`{{phone}}`), for copies kept where operators read them (dead letters).
    public func json(maskAddress: Bool = false, maskContent: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(320)
        appendJSON(to: &bytes, maskAddress: maskAddress, maskContent: maskContent)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the JSON object as UTF-8 (a provider batch is built in one byte array).
    public func appendJSON(to out: inout [UInt8], maskAddress: Bool = false, maskContent: Bool = false) {
        JSONText.append("{\"message_id\":", to: &out)
        JSONText.quote(messageID, into: &out)
        JSONText.append(",\"campaign_id\":", to: &out)
        JSONText.quote(campaignID, into: &out)
        JSONText.append(",\"user_id\":", to: &out)
        JSONText.quote(userID, into: &out)
        JSONText.append(",\"channel\":", to: &out)
        JSONText.quote(channel, into: &out)
        JSONText.append(",\"to\":", to: &out)
        JSONText.quote(maskAddress ? Redaction.maskText(to) : to, into: &out)
        JSONText.append(",\"title\":", to: &out)
        JSONText.quote(maskContent ? Redaction.maskText(title) : title, into: &out)
        JSONText.append(",\"body\":", to: &out)
        JSONText.quote(maskContent ? Redaction.maskText(body) : body, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}
