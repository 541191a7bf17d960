import Foundation

/// A provider's `Retry-After` (RFC 9110 §10.2.3) as a wait: delay-seconds
/// (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`, see `HTTPDate`).
public enum RetryAfter {
    /// The longest wait a provider can ask for. A retry waits in the delay queue
    /// with its row `scheduled`; a provider's clock error or a bogus header
    /// should not park a message for years. A day still covers any real
    /// rate-limit window.
    public static let maximum: Duration = .seconds(86_400)

    /// nil: no usable value (absent, malformed, negative), so the backoff alone
    /// decides. A date in the past is no wait; anything beyond `maximum` waits `maximum`.
    public static func delay(_ value: String, now: Date = Date(), maximum: Duration = RetryAfter.maximum) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            // More digits than an Int holds is still just "very long".
            guard let seconds = Int(text) else { return maximum }
            return min(.seconds(seconds), maximum)
        }
        guard let date = HTTPDate.parse(text, now: now) else { return nil }
        let seconds = date.timeIntervalSince(now)
        guard seconds > 0 else { return .zero }
        return min(.seconds(seconds), maximum)
    }
}
