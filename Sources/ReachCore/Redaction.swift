/// Masks personal data before it reaches a log line.
///
/// Phone numbers keep their first three and last four digits (`138****1234`);
/// e-mail addresses keep the first character of the local part and the domain
/// (`a***@x.com`); a URL's password becomes `***`.
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

    /// `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`.
    public static func maskURLPassword(_ url: String) -> String {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return url }
        let rest = parts[1]
        guard let at = rest.lastIndex(of: "@") else { return url }
        let userInfo = rest[rest.startIndex..<at]
        guard let colon = userInfo.firstIndex(of: ":") else { return url }
        return parts[0] + "://" + userInfo[..<colon] + ":***" + rest[at...]
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
