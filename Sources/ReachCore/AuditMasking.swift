import Foundation

/// What of a request body may be kept in the audit trail: phone numbers and
/// e-mail addresses masked wherever they appear, values of secret-looking or
/// contact keys replaced, and at most `maxBytes` of it.
public enum AuditMasking {
    public static let maxBytes = 16 * 1024

    /// Keys whose values are never kept (compared lower-cased, `-` as `_`).
    static let secretKeys: Set<String> = ["token", "password", "passwd", "secret", "authorization", "api_key", "apikey",
                                          "access_token", "refresh_token", "client_secret", "private_key", "credentials", "auth"]
    /// Contact fields: masked even when they do not look like a phone or an address.
    static let contactKeys: Set<String> = ["phone", "email", "push_token", "to"]

    public static func mask(body: [UInt8]) -> String {
        let text: String
        if let json = try? JSONParser.parse(body) {
            text = mask(json).jsonText
        } else {
            text = Redaction.maskText(String(decoding: body, as: UTF8.self))
        }
        return JSONText.cut(text, maxBytes: maxBytes).text
    }

    public static func mask(_ value: JSONValue, key: String? = nil) -> JSONValue {
        let name = key.map { $0.lowercased().replacingOccurrences(of: "-", with: "_") }
        if let name, secretKeys.contains(name) || name.hasSuffix("_token") && name != "push_token" || name.hasSuffix("password") || name.hasSuffix("secret") {
            return .string("***")
        }
        switch value {
        case .string(let s):
            if let name, contactKeys.contains(name) {
                return .string(s.contains("@") ? Redaction.maskEmail(s) : Redaction.maskPhone(s))
            }
            return .string(Redaction.maskText(s))
        case .array(let items):
            return .array(items.map { mask($0, key: key) })
        case .object(let object):
            var out: [String: JSONValue] = [:]
            for (k, v) in object { out[k] = mask(v, key: k) }
            return .object(out)
        default:
            return value
        }
    }
}
