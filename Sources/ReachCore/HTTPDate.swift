import Foundation

/// HTTP-date (RFC 9110 §5.6.7), as a `Retry-After` may carry it. Reads the
/// preferred IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete
/// forms recipients must still accept: RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`). Always UTC (`GMT`).
///
/// Lenient where the RFC asks recipients to be: a one-digit day is taken in
/// every form, and the day name is checked to be one but not against the date.
/// A leap second (`:60`) is read as the next second.
public enum HTTPDate {
    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let shortDays: Set<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    static let longDays: Set<String> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    /// `now` places RFC 850's two-digit year: a year more than 50 years ahead
    /// of it is the one a century earlier.
    public static func parse(_ text: String, now: Date = Date()) -> Date? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.lowercased() }
        switch fields.count {
        case 6:  // IMF-fixdate
            guard fields[0].hasSuffix(","), shortDays.contains(String(fields[0].dropLast())), fields[5] == "gmt",
                  let day = number(fields[1], digits: 1...2), let month = month(fields[2]),
                  let year = number(fields[3], digits: 4...4) else { return nil }
            return instant(year: year, month: month, day: day, time: fields[4])
        case 4:  // RFC 850
            let date = fields[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard fields[0].hasSuffix(","), longDays.contains(String(fields[0].dropLast())), fields[3] == "gmt", date.count == 3,
                  let day = number(date[0], digits: 1...2), let month = month(date[1]),
                  let yy = number(date[2], digits: 2...2) else { return nil }
            return instant(year: fullYear(yy, now: now), month: month, day: day, time: fields[2])
        case 5:  // asctime
            guard shortDays.contains(fields[0]), let month = month(fields[1]), let day = number(fields[2], digits: 1...2),
                  let year = number(fields[4], digits: 4...4) else { return nil }
            return instant(year: year, month: month, day: day, time: fields[3])
        default:
            return nil
        }
    }

    static func number(_ text: String, digits: ClosedRange<Int>) -> Int? {
        guard digits.contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }

    static func month(_ text: String) -> Int? {
        months.firstIndex(of: text).map { $0 + 1 }
    }

    /// The year in (now − 50, now + 50] whose last two digits are `yy`.
    static func fullYear(_ yy: Int, now: Date) -> Int {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let current = utc.component(.year, from: now)
        var year = current - current % 100 + yy
        if year > current + 50 { year -= 100 } else if year + 100 <= current + 50 { year += 100 }
        return year
    }

    /// `time` is `HH:MM:SS`.
    static func instant(year: Int, month: Int, day: Int, time: String) -> Date? {
        let parts = time.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let hour = number(parts[0], digits: 2...2), let minute = number(parts[1], digits: 2...2),
              let second = number(parts[2], digits: 2...2),
              day >= 1, day <= RFC3339.daysIn(month: month, year: year), hour <= 23, minute <= 59, second <= 60 else { return nil }
        let days = RFC3339.daysFromCivil(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3600 + minute * 60 + second))
    }
}

extension HTTPDate {
    /// `date` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    public static func format(_ date: Date) -> String { utc(date, "EEE, dd MMM yyyy HH:mm:ss 'GMT'") }

    /// `date` in UTC with a fixed English pattern, whatever the process's locale
    /// (HTTP and RFC 5322 `Date:` headers).
    public static func utc(_ date: Date, _ pattern: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = pattern
        return formatter.string(from: date)
    }
}
