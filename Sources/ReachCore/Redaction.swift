import Foundation

/// Masks personal data before it reaches a log line.
///
/// Phone numbers keep their first three and last four digits (`138****1234`);
/// e-mail addresses keep the first character of the local part and the domain
/// (`a***@x.com`); the secrets of a connection string become `***`.
public enum Redaction {
    public static func maskPhone(_ phone: String) -> String {
        let chars = Array(phone)
        guard chars.count > 7 else { return String(repeating: "*", count: chars.count) }
        return String(chars.prefix(3)) + "****" + String(chars.suffix(4))
    }

    public static func maskEmail(_ email: String) -> String {
        guard let at = email.lastIndex(of: "@"), at != email.startIndex else { return "***" }
        return String(email[email.startIndex]) + "***" + String(email[at...])
    }

    /// Masks the secrets of a database or Redis address before it is printed,
    /// in every form libpq and reachd accept:
    ///
    /// - URL user info: `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`,
    ///   `redis://:pw@h` → `redis://:***@h`; for `redis://` and `rediss://` user info
    ///   without a colon is the password too (`redis://pw@h` → `redis://***@h`);
    /// - URL query parameters: `?password=x`, `&sslpassword=x` → `password=***`;
    /// - keyword connection strings: `host=db password=x` → `host=db password=***`,
    ///   also quoted values (`password='a b\'c'` → `password=***`).
    ///
    /// Anything that is not a secret is kept, so the line still says where reachd connects.
    public static func maskConnectionSecrets(_ text: String) -> String {
        if let scheme = text.range(of: "://") {
            return maskURL(text, schemeEnd: scheme.upperBound, isRedis: text[..<scheme.lowerBound].lowercased().hasPrefix("redis"))
        }
        return maskKeywords(text)
    }

    /// Kept for callers written before `maskConnectionSecrets`: the same masking.
    public static func maskURLPassword(_ url: String) -> String { maskConnectionSecrets(url) }

    /// Query parameters and connection keywords whose value is a secret.
    static let secretKeys: Set<String> = ["password", "sslpassword", "pass", "passwd", "pwd", "secret", "token"]

    private static func maskURL(_ url: String, schemeEnd: String.Index, isRedis: Bool) -> String {
        var out = String(url[..<schemeEnd])
        var rest = url[schemeEnd...]
        // User info is everything before the *last* '@': a password may hold an
        // unescaped '/', '?', '#' or '@', and masking too much is better than too little.
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                out += userInfo[..<colon] + ":***"
            } else {
                out += isRedis && !userInfo.isEmpty ? "***" : String(userInfo)
            }
            out += "@"
            rest = rest[rest.index(after: at)...]
        }
        guard let question = rest.firstIndex(of: "?") else { return out + rest }
        out += rest[...question]
        let query = rest[rest.index(after: question)...]
        let fragment = query.firstIndex(of: "#") ?? query.endIndex
        out += query[..<fragment].split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let eq = pair.firstIndex(of: "="), secretKeys.contains(pair[..<eq].lowercased()) else { return String(pair) }
            return pair[...eq] + "***"
        }.joined(separator: "&")
        return out + query[fragment...]
    }

    /// `key=value` pairs separated by spaces; a value may be single-quoted with `\` escapes.
    private static func maskKeywords(_ text: String) -> String {
        let chars = Array(text)
        var out = ""
        var i = 0
        while i < chars.count {
            // Copy white space, then read one `key = value` pair.
            if chars[i].isWhitespace {
                out.append(chars[i])
                i += 1
                continue
            }
            let keyStart = i
            while i < chars.count, chars[i] != "=", !chars[i].isWhitespace { i += 1 }
            let key = String(chars[keyStart..<i])
            out += key
            var j = i
            while j < chars.count, chars[j].isWhitespace { j += 1 }
            guard j < chars.count, chars[j] == "=" else { continue }
            out += String(chars[i...j])
            j += 1
            while j < chars.count, chars[j].isWhitespace {
                out.append(chars[j])
                j += 1
            }
            let valueStart = j
            if j < chars.count, chars[j] == "'" {
                j += 1
                while j < chars.count, chars[j] != "'" { j += chars[j] == "\\" ? 2 : 1 }
                j = min(j + 1, chars.count)
            } else {
                while j < chars.count, !chars[j].isWhitespace { j += 1 }
            }
            out += secretKeys.contains(key.lowercased()) ? "***" : String(chars[valueStart..<j])
            i = j
        }
        return out
    }

    /// Masks every phone number, e-mail address, national ID number and bank card
    /// number found in free text.
    ///
    /// - A phone number is 8–15 digits, optionally led by `+`, written in one run or
    ///   in groups joined by single spaces or hyphens (`138-1234-5678`,
    ///   `+86 138 1234 5678`): `138****5678`, `+86****5678`. Not phones: a date
    ///   (`2026-11-22`) and a number grouped in thousands (`12 000 000`).
    /// - A national ID number is 17 digits and a digit or `X` (the resident ID
    ///   form): its first 6 and last 4 are kept, `110101********123X`.
    /// - A bank card number is 13–19 digits, in one run or in groups, whose Luhn
    ///   check holds: only its last 4 are kept, `************1111`.
    /// - An e-mail address is `local@domain.tld`.
    ///
    /// Anything else is left as it is.
    public static func maskText(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if let (end, masked) = emailAt(scalars, i) ?? numberAt(scalars, i) {
                out.append(contentsOf: masked.unicodeScalars)
                i = end
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    private static func isDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 48 && s.value <= 57 }
    private static func isWordish(_ s: Unicode.Scalar) -> Bool {
        s.properties.isAlphabetic || isDigit(s) || s == "_"
    }
    private static func isLocalPart(_ s: Unicode.Scalar) -> Bool {
        isWordish(s) || s == "." || s == "+" || s == "-"
    }
    private static func isDomainPart(_ s: Unicode.Scalar) -> Bool {
        isWordish(s) || s == "." || s == "-"
    }

    /// Reads a number that may be a phone, an ID or a card at `start`: digits, optionally
    /// led by `+`, in groups joined by one space or hyphen, not inside a word.
    private static func numberAt(_ s: [Unicode.Scalar], _ start: Int) -> (Int, String)? {
        if start > 0, isWordish(s[start - 1]) || s[start - 1] == "+" { return nil }
        // Inside a hyphenated or dotted identifier (`bench-3-12345678`, `v1.2.3`): not a number of ours.
        if start > 1, s[start - 1] == "-" || s[start - 1] == ".", isWordish(s[start - 2]) { return nil }
        var i = start
        let plus = s[i] == "+"
        if plus { i += 1 }
        var groups: [[Unicode.Scalar]] = []
        var separators: [Unicode.Scalar] = []
        var end = i
        while true {
            var j = i
            while j < s.count, isDigit(s[j]) { j += 1 }
            guard j > i else { break }
            groups.append(Array(s[i..<j]))
            end = j
            // The last group of a national ID may end in X.
            if j < s.count, s[j] == "X" || s[j] == "x", groups.count == 1, j - i == 17 {
                end = j + 1
                groups[0].append(s[j])
                break
            }
            guard j + 1 < s.count, s[j] == " " || s[j] == "-", isDigit(s[j + 1]) else { break }
            if let first = separators.first, first != s[j] { break }
            separators.append(s[j])
            i = j + 1
        }
        guard !groups.isEmpty, end == s.count || !isWordish(s[end]) else { return nil }
        // A decimal or a version (`3.14159265`, `1.2.3`) is not a number of ours.
        if end < s.count, s[end] == ".", end + 1 < s.count, isDigit(s[end + 1]) { return nil }
        let digits = groups.flatMap { $0 }
        if !plus, groups.count == 1, digits.count == 18, digits.prefix(17).allSatisfy(isDigit),
           isDigit(digits[17]) || digits[17] == "X" || digits[17] == "x" {
            return (end, String(String.UnicodeScalarView(digits.prefix(6))) + String(repeating: "*", count: 8)
                         + String(String.UnicodeScalarView(digits.suffix(4))))
        }
        guard digits.allSatisfy(isDigit) else { return nil }
        if !plus, (13...19).contains(digits.count), luhn(digits) {
            return (end, String(repeating: "*", count: digits.count - 4) + String(String.UnicodeScalarView(digits.suffix(4))))
        }
        guard (8...15).contains(digits.count) else { return nil }
        if groups.count > 1 {
            let sizes = groups.map(\.count)
            // A phone's groups start short (`138-…`, `+86 …`, `0755-…`): `c-20261122-01` is an id.
            guard sizes[0] <= 4, sizes[sizes.count - 1] >= 3 else { return nil }
            if separators.first == "-", sizes.count == 3, sizes[0] == 4, sizes[1] <= 2, sizes[2] <= 2 { return nil }  // a date
            if separators.first == " ", sizes.dropFirst().allSatisfy({ $0 == 3 }), sizes[0] <= 3 { return nil }  // 12 000 000
        }
        let compact = (plus ? "+" : "") + String(String.UnicodeScalarView(digits))
        return (end, maskPhone(compact))
    }

    /// Whether a digit string passes the Luhn check (cards, for tests).
    public static func luhnHolds(_ digits: String) -> Bool { luhn(Array(digits.unicodeScalars)) }

    /// The Luhn check of a card number.
    static func luhn(_ digits: [Unicode.Scalar]) -> Bool {
        var sum = 0
        for (k, d) in digits.reversed().enumerated() {
            var v = Int(d.value) - 48
            if k % 2 == 1 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        return sum % 10 == 0
    }

    private static func emailAt(_ s: [Unicode.Scalar], _ start: Int) -> (Int, String)? {
        if start > 0, isLocalPart(s[start - 1]) { return nil }
        var i = start
        while i < s.count, isLocalPart(s[i]) { i += 1 }
        guard i > start, i < s.count, s[i] == "@" else { return nil }
        var j = i + 1
        var sawDot = false
        while j < s.count, isDomainPart(s[j]) {
            if s[j] == "." { sawDot = true }
            j += 1
        }
        while j > i + 1, s[j - 1] == "." { j -= 1 }
        guard j > i + 1, sawDot else { return nil }
        // The top-level domain is letters (`x.com`), which keeps `user@127.0.0.1` in URLs readable.
        let domain = s[(i + 1)..<j]
        let tld = domain.split(separator: ".").last ?? []
        guard tld.count >= 2, tld.allSatisfy({ $0.properties.isAlphabetic }) else { return nil }
        let text = String(String.UnicodeScalarView(s[start..<j]))
        return (j, maskEmail(text))
    }
}

/// Masks the values of configured sensitive attribute names (`log.sensitive_keys`)
/// wherever a log line carries them: as JSON members (`"id_number": "…"`), as
/// `key=value` or `key: value` text, and as a metadata key of its own.
public struct SensitiveKeys: Sendable {
    public let names: Set<String>
    private let json: NSRegularExpression?
    private let pairs: NSRegularExpression?

    public init(_ names: [String]) {
        let cleaned = names.map { $0.lowercased() }.filter { !$0.isEmpty }
        self.names = Set(cleaned)
        let alternatives = cleaned.map(NSRegularExpression.escapedPattern(for:)).joined(separator: "|")
        if alternatives.isEmpty {
            json = nil
            pairs = nil
        } else {
            json = try? NSRegularExpression(pattern: #"("(?:"# + alternatives + #")"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\]\s]+)"#,
                                            options: [.caseInsensitive])
            pairs = try? NSRegularExpression(pattern: #"(?<![\w.])((?:"# + alternatives + #")(?:=|: ))([^\s,;}\]]+)"#,
                                             options: [.caseInsensitive])
        }
    }

    public func isSensitive(_ key: String) -> Bool { names.contains(key.lowercased()) }

    public func mask(_ text: String) -> String {
        guard let json, let pairs, names.contains(where: { text.range(of: $0, options: .caseInsensitive) != nil }) else { return text }
        var out = text
        out = json.stringByReplacingMatches(in: out, range: NSRange(out.startIndex..., in: out), withTemplate: "$1\"***\"")
        out = pairs.stringByReplacingMatches(in: out, range: NSRange(out.startIndex..., in: out), withTemplate: "$1***")
        return out
    }
}
