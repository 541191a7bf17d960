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

    /// Masks every phone number and e-mail address found in free text.
    ///
    /// A phone number is a run of 8–15 digits, optionally led by `+`; an e-mail
    /// address is `local@domain.tld`. Anything else is left as it is.
    public static func maskText(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if let (end, masked) = emailAt(scalars, i) ?? phoneAt(scalars, i) {
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

    private static func phoneAt(_ s: [Unicode.Scalar], _ start: Int) -> (Int, String)? {
        if start > 0, isWordish(s[start - 1]) { return nil }
        var i = start
        if s[i] == "+" { i += 1 }
        let digitsStart = i
        while i < s.count, isDigit(s[i]) { i += 1 }
        let count = i - digitsStart
        guard (8...15).contains(count) else { return nil }
        if i < s.count, isWordish(s[i]) { return nil }
        let text = String(String.UnicodeScalarView(s[start..<i]))
        return (i, maskPhone(text))
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
