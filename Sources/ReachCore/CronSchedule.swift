import Foundation

/// A recurring schedule (SPEC §3.1 `schedule.cron`): a cron expression read in
/// one time zone, with minute resolution.
///
/// Syntax: five fields, `minute hour day-of-month month day-of-week`, each a
/// list (`,`) of `*`, `n`, `a-b`, with an optional step (`*/5`, `0/5` = from 0
/// to the field's end, `10-30/10`). Months and weekdays also take English
/// names (`JAN`, `mon`); weekday 0 and 7 are Sunday. `@yearly`, `@monthly`,
/// `@weekly`, `@daily` and `@hourly` stand for their usual five fields.
///
/// Choices (README "Recurring campaigns"):
/// - Day matching follows Vixie cron: when both day-of-month and day-of-week
///   are restricted (neither starts with `*` or is `?`), a day matches if
///   EITHER does; otherwise both must (so `*/2 * 1` means odd days that are Mondays).
/// - Quartz's six-field form (`0 0/5 * * * ?`) is accepted when its seconds
///   field is `0`; `?` means `*`; its weekday numbers are Quartz's (1 = Sunday
///   … 7 = Saturday). `L`, `W`, `#` and a year field are refused.
/// - DST: a wall time that does not exist (spring forward) fires once when
///   the gap ends, at the first minute that exists (02:30 → 03:00 in New
///   York); a wall time that happens twice (fall back) fires once, at its
///   first occurrence.
/// - An expression that can never match (`0 0 30 2 *`) is refused.
public struct CronSchedule: Sendable, Equatable {
    /// The expression as given.
    public let expression: String
    public let timeZone: TimeZone
    let minutes: [Int]
    let hours: [Int]
    /// Bit n set: day n of the month (1-31) matches.
    let days: UInt32
    /// Bit n set: month n (1-12) matches.
    let months: UInt16
    /// Bit n set: weekday n (0 = Sunday … 6) matches.
    let weekdays: UInt8
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    /// Parses `expression`; every refusal is a `ValidationError` at `path` that says what is wrong.
    public init(_ expression: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!, path: String = "schedule.cron") throws {
        self.expression = expression
        self.timeZone = timeZone
        func fail(_ message: String) -> ValidationError { ValidationError(path, message) }
        var fields = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if fields.count == 1, let macro = Self.macros[fields[0].lowercased()] {
            fields = macro.split(separator: " ").map(String.init)
        }
        var quartz = false
        switch fields.count {
        case 5: break
        case 6:
            // Quartz: seconds first. Runs are per minute, so only second 0 has a meaning.
            guard fields[0] == "0" else {
                throw fail("a six-field (Quartz) expression must have 0 as its seconds field; runs are at most once a minute")
            }
            fields.removeFirst()
            quartz = true
        case 7:
            throw fail("a year field (Quartz's seventh) is not supported; use five fields: minute hour day-of-month month day-of-week")
        default:
            throw fail("needs five fields (minute hour day-of-month month day-of-week), e.g. \"0 9 * * 1\"; got \(fields.count)")
        }
        let minute = try Field.minute.parse(fields[0], path: path)
        let hour = try Field.hour.parse(fields[1], path: path)
        let day = try Field.dayOfMonth.parse(fields[2], path: path)
        let month = try Field.month.parse(fields[3], path: path)
        let weekday = try (quartz ? Field.quartzDayOfWeek : Field.dayOfWeek).parse(fields[4], path: path)
        minutes = (0...59).filter { minute.bits & (1 << $0) != 0 }
        hours = (0...23).filter { hour.bits & (1 << $0) != 0 }
        days = UInt32(truncatingIfNeeded: day.bits)
        months = UInt16(truncatingIfNeeded: month.bits)
        // Quartz counts 1-7 from Sunday, cron 0-7 (7 again Sunday): both fold onto 0-6.
        var folded: UInt8 = 0
        for v in 0...7 where weekday.bits & (1 << v) != 0 { folded |= 1 << (quartz ? (v + 6) % 7 : v % 7) }
        weekdays = folded
        daysRestricted = !day.star
        weekdaysRestricted = !weekday.star
        // Either rule lets any weekday in; otherwise the days of the month must occur in a chosen month.
        if !(daysRestricted && weekdaysRestricted) {
            let possible = (1...12).contains { m in
                months & (1 << m) != 0 && (1...Self.maxDays(month: m)).contains { days & (1 << $0) != 0 }
            }
            guard possible else { throw fail("never matches: none of its days of the month occur in its months") }
        }
    }

    static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    static func maxDays(month: Int) -> Int { month == 2 ? 29 : RFC3339.daysIn(month: month, year: 2000) }

    /// The first run strictly after `date`; nil when there is none within 30 years.
    public func next(after date: Date) -> Date? {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        // Wall-clock minutes from the minute after `date`'s, in the zone.
        let wall = seconds + timeZone.secondsFromGMT(for: date)
        let firstMinute = Self.floorDiv(wall, 60) + 1
        var day = Self.floorDiv(firstMinute, 1440)
        var fromMinute = firstMinute - day * 1440
        let lastDay = day + 30 * 366
        while day <= lastDay {
            let (y, m, d) = Self.civil(day)
            guard months & (1 << m) != 0 else {
                day = RFC3339.daysFromCivil(year: m == 12 ? y + 1 : y, month: m == 12 ? 1 : m + 1, day: 1)
                fromMinute = 0
                continue
            }
            if matches(day: d, weekday: Self.weekday(day)) {
                for h in hours where (h + 1) * 60 > fromMinute {
                    for mi in minutes where h * 60 + mi >= fromMinute {
                        let run = instant(wallSeconds: day * 86_400 + h * 3600 + mi * 60)
                        // In a repeated hour, a wall time's first occurrence may lie before `date`: then it already fired.
                        if run > date { return run }
                    }
                }
            }
            day += 1
            fromMinute = 0
        }
        return nil
    }

    /// The last run at or before `date` and not before `earliest`; nil when there is none.
    public func last(atOrBefore date: Date, notBefore earliest: Date) -> Date? {
        guard earliest <= date else { return nil }
        // Look back through growing windows, so a frequent schedule steps over a
        // few runs only, however long ago `earliest` is.
        let day: TimeInterval = 86_400
        let windows: [TimeInterval] = [300, 3600, day, 7 * day, 32 * day, 367 * day, 30 * 367 * day]
        for window in windows {
            let start = max(earliest.addingTimeInterval(-1), date.addingTimeInterval(-window))
            if var run = next(after: start), run <= date {
                while let later = next(after: run), later <= date { run = later }
                return run
            }
            if start <= earliest { return nil }
        }
        return nil
    }

    /// Runs from `start` (included) up to `end` (excluded), counted up to `limit`.
    public func count(from start: Date, before end: Date, limit: Int = 10_000) -> Int {
        var n = 0
        var run = next(after: start.addingTimeInterval(-1))
        while let r = run, r < end, n < limit {
            n += 1
            run = next(after: r)
        }
        return n
    }

    /// What a series waiting for its run at `due` does at `now`.
    public enum Decision: Sendable, Equatable {
        /// Nothing is due before `until`.
        case wait(until: Date)
        /// Fire the run at `at`; `skipped` runs before it (from `due` on) fell
        /// due while nothing could fire them and are not fired; `next` is the
        /// run after it (nil: the series ends with this run).
        case run(at: Date, skipped: Int, next: Date?)
        /// The series has no run left (`expires_at` passed, or none will ever come).
        case over
    }

    /// Missed runs (every instance down, Redis lost the item): only the most
    /// recent run that is due fires, never an older one, and no run fires at
    /// or after `expiresAt`.
    public func decide(waitingFor due: Date, now: Date, expiresAt: Date?) -> Decision {
        /// A run that may still happen: before `expiresAt`.
        func live(_ run: Date?) -> Date? {
            guard let run else { return nil }
            if let expiresAt, run >= expiresAt { return nil }
            return run
        }
        if let expiresAt, now >= expiresAt { return .over }
        guard let first = live(next(after: due.addingTimeInterval(-1))) else { return .over }
        guard first <= now else { return .wait(until: first) }
        let run = last(atOrBefore: now, notBefore: first) ?? first
        return .run(at: run, skipped: count(from: first, before: run), next: live(next(after: run)))
    }

    func matches(day: Int, weekday: Int) -> Bool {
        let d = days & (1 << day) != 0
        let w = weekdays & (1 << weekday) != 0
        return daysRestricted && weekdaysRestricted ? d || w : d && w
    }

    /// The instant a wall time (seconds since 1970-01-01T00:00 local) names:
    /// its first occurrence when the clock went back over it, the end of the
    /// gap when the clock jumped over it.
    func instant(wallSeconds w: Int) -> Date {
        func offset(_ t: Int) -> Int { timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t))) }
        let before = offset(w - 86_400), after = offset(w + 86_400)
        if before == after, offset(w - before) == before {
            return Date(timeIntervalSince1970: TimeInterval(w - before))
        }
        // A change of offset nearby: try each offset in force around it.
        var offsets: [Int] = []
        for probe in [w - 86_400, w - 50_400, w, w + 50_400, w + 86_400] where !offsets.contains(offset(probe)) {
            offsets.append(offset(probe))
        }
        let valid = offsets.map { w - $0 }.filter { offset($0) == w - $0 }
        if let first = valid.min() { return Date(timeIntervalSince1970: TimeInterval(first)) }
        // In the gap: the transition lies after the wall time read with the
        // later offset and at or before it read with the earlier one.
        var lo = w - (offsets.max() ?? 0), hi = w - (offsets.min() ?? 0)
        let old = offset(lo)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if offset(mid) == old { lo = mid } else { hi = mid }
        }
        return Date(timeIntervalSince1970: TimeInterval(hi))
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// 0 = Sunday; 1970-01-01 was a Thursday.
    static func weekday(_ day: Int) -> Int { ((day % 7) + 7 + 4) % 7 }

    /// The proleptic Gregorian date of a day since 1970-01-01 (H. Hinnant's algorithm).
    static func civil(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// One of the five fields: its name, range and names.
    struct Field {
        let name: String
        let range: ClosedRange<Int>
        var names: [String: Int] = [:]
        var allowsQuestionMark = false

        static let minute = Field(name: "minute", range: 0...59)
        static let hour = Field(name: "hour", range: 0...23)
        static let dayOfMonth = Field(name: "day-of-month", range: 1...31, allowsQuestionMark: true)
        static let month = Field(name: "month", range: 1...12, names: Dictionary(uniqueKeysWithValues:
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"].enumerated().map { ($1, $0 + 1) }))
        static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        static let dayOfWeek = Field(name: "day-of-week", range: 0...7,
                                     names: Dictionary(uniqueKeysWithValues: weekdayNames.enumerated().map { ($1, $0) }), allowsQuestionMark: true)
        static let quartzDayOfWeek = Field(name: "day-of-week", range: 1...7,
                                           names: Dictionary(uniqueKeysWithValues: weekdayNames.enumerated().map { ($1, $0 + 1) }), allowsQuestionMark: true)

        /// The values as bits (bit n: value n), and whether the field counts as unrestricted for the day rule.
        func parse(_ text: String, path: String) throws -> (bits: UInt64, star: Bool) {
            func fail(_ message: String) -> ValidationError { ValidationError(path, "\(name) field '\(text)': \(message)") }
            if text == "?" {
                guard allowsQuestionMark else { throw fail("'?' is only allowed for day-of-month and day-of-week") }
                return (range.reduce(0) { $0 | 1 << UInt64($1) }, true)
            }
            func value(_ s: Substring) throws -> Int {
                if !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s) {
                    guard range.contains(n) else { throw fail("\(n) is out of range \(range.lowerBound)-\(range.upperBound)") }
                    return n
                }
                if let n = names[s.lowercased()] { return n }
                if s.uppercased().contains(where: { "LW#".contains($0) }) {
                    throw fail("L, W and # (Quartz extensions) are not supported")
                }
                throw fail("'\(s)' is not a number\(names.isEmpty ? "" : " or a name")")
            }
            var bits: UInt64 = 0
            for item in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard !item.isEmpty else { throw fail("empty list item") }
                let parts = item.split(separator: "/", omittingEmptySubsequences: false)
                guard parts.count <= 2 else { throw fail("'\(item)' has more than one step") }
                var step = 1
                if parts.count == 2 {
                    guard let s = Int(parts[1]), s >= 1, s <= range.count else {
                        throw fail("step '\(parts[1])' must be a whole number from 1 to \(range.count)")
                    }
                    step = s
                }
                let base = parts[0]
                let from: Int, to: Int
                if base == "*" {
                    (from, to) = (range.lowerBound, range.upperBound)
                } else if let dash = base.firstIndex(of: "-") {
                    (from, to) = (try value(base[..<dash]), try value(base[base.index(after: dash)...]))
                    guard from <= to else { throw fail("range \(base) runs backwards") }
                } else {
                    from = try value(base)
                    // `0/5`: a start with a step runs to the field's end.
                    to = parts.count == 2 ? range.upperBound : from
                }
                for v in stride(from: from, through: to, by: step) { bits |= 1 << UInt64(v) }
            }
            return (bits, text.hasPrefix("*"))
        }
    }
}

/// The runs of a recurring campaign are campaigns of their own, with ids
/// `<campaign_id>@<run time, RFC 3339 UTC to the second>` (SPEC §3.1).
public enum CampaignRun {
    public static func id(of parent: String, at run: Date) -> String { "\(parent)@\(format(run))" }

    /// `2026-12-07T01:00:00Z`: whole seconds, UTC.
    public static func format(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let day = CronSchedule.floorDiv(seconds, 86_400)
        let (y, m, d) = CronSchedule.civil(day)
        let s = seconds - day * 86_400
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, s / 3600, s / 60 % 60, s % 60)
    }

    /// The parent id and run time of a run id; nil for any other id.
    public static func parse(_ id: String) -> (parent: String, at: Date)? {
        guard let at = id.lastIndex(of: "@") else { return nil }
        let time = String(id[id.index(after: at)...])
        guard let date = RFC3339.parse(time), format(date) == time else { return nil }
        return (String(id[..<at]), date)
    }
}
