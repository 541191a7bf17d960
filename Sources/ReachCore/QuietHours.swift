import Foundation

/// A daily window (e.g. 21:00–08:00, possibly across midnight) during which
/// nothing is sent, read in each user's own time zone.
public struct QuietHours: Sendable, Equatable {
    public let start: (hour: Int, minute: Int)
    public let end: (hour: Int, minute: Int)
    public let defaultTimeZone: TimeZone

    public static func == (a: QuietHours, b: QuietHours) -> Bool {
        a.start == b.start && a.end == b.end && a.defaultTimeZone == b.defaultTimeZone
    }

    /// `start`/`end` as `HH:MM`; nil when either is malformed or the zone is unknown.
    public init?(start: String, end: String, defaultTimeZone: String) {
        func clock(_ s: String) -> (Int, Int)? {
            let parts = s.split(separator: ":")
            guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...23).contains(h), (0...59).contains(m) else { return nil }
            return (h, m)
        }
        guard let start = clock(start), let end = clock(end), let zone = TimeZone(identifier: defaultTimeZone) else { return nil }
        self.start = start
        self.end = end
        self.defaultTimeZone = zone
    }

    /// When the window ends if `now` falls inside it for a user in `timezone`
    /// (unknown or nil: the default zone); nil when sending now is fine.
    public func deferral(now: Date, timezone: String?) -> Date? {
        let zone = timezone.flatMap(TimeZone.init(identifier:)) ?? defaultTimeZone
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let parts = calendar.dateComponents([.hour, .minute], from: now)
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        let from = start.hour * 60 + start.minute
        let to = end.hour * 60 + end.minute
        guard from != to else { return nil }
        let inside = from < to ? (minute >= from && minute < to) : (minute >= from || minute < to)
        guard inside else { return nil }
        return calendar.nextDate(after: now, matching: DateComponents(hour: end.hour, minute: end.minute, second: 0),
                                 matchingPolicy: .nextTime)
    }
}
