import Foundation
@testable import ReachCore
import Testing

@Suite("schedule.cron: parsing, next runs, time zones and DST")
struct CronScheduleTests {
    func t(_ text: String) -> Date { RFC3339.parse(text)! }
    func cron(_ expression: String, _ zone: String = "UTC") throws -> CronSchedule {
        try CronSchedule(expression, timeZone: TimeZone(identifier: zone)!)
    }
    /// The first `count` runs after `start`, as RFC 3339 UTC.
    func runs(_ c: CronSchedule, after start: String, _ count: Int) -> [String] {
        var out: [String] = []
        var at = t(start)
        for _ in 0..<count {
            guard let n = c.next(after: at) else { break }
            out.append(CampaignRun.format(n))
            at = n
        }
        return out
    }
    func error(_ expression: String) -> ValidationError? {
        do {
            _ = try CronSchedule(expression)
            return nil
        } catch let e as ValidationError {
            return e
        } catch {
            return ValidationError("?", "\(error)")
        }
    }

    @Test("every five minutes: */5 and 0/5 alike, strictly after the given time")
    func everyFiveMinutes() throws {
        let expected = ["2026-12-03T10:05:00Z", "2026-12-03T10:10:00Z", "2026-12-03T10:15:00Z"]
        #expect(runs(try cron("*/5 * * * *"), after: "2026-12-03T10:03:10Z", 3) == expected)
        #expect(runs(try cron("0/5 * * * *"), after: "2026-12-03T10:03:10Z", 3) == expected)
        // Exactly on a run: the next one, not the same.
        #expect(runs(try cron("*/5 * * * *"), after: "2026-12-03T10:05:00Z", 1) == ["2026-12-03T10:10:00Z"])
        #expect(runs(try cron("*/5 * * * *"), after: "2026-12-03T23:58:00Z", 1) == ["2026-12-04T00:00:00Z"])
    }

    @Test("weekly Monday 09:00 in Asia/Shanghai is Monday 01:00 UTC")
    func weeklyShanghai() throws {
        let c = try cron("0 9 * * 1", "Asia/Shanghai")
        // 2026-12-03 is a Thursday.
        #expect(runs(c, after: "2026-12-03T10:00:00Z", 3) == ["2026-12-07T01:00:00Z", "2026-12-14T01:00:00Z", "2026-12-21T01:00:00Z"])
        // Monday 08:59 Shanghai (00:59 UTC): the same day's run.
        #expect(runs(c, after: "2026-12-07T00:59:00Z", 1) == ["2026-12-07T01:00:00Z"])
        // Names and 7 for Sunday mean the same as numbers.
        #expect(runs(try cron("0 9 * * MON", "Asia/Shanghai"), after: "2026-12-03T10:00:00Z", 1) == ["2026-12-07T01:00:00Z"])
        #expect(runs(try cron("0 0 * * 7"), after: "2026-12-03T10:00:00Z", 1) == runs(try cron("0 0 * * sun"), after: "2026-12-03T10:00:00Z", 1))
        #expect(runs(try cron("0 0 * * 7"), after: "2026-12-03T10:00:00Z", 1) == ["2026-12-06T00:00:00Z"])
    }

    @Test("month ends: day 31 skips 30-day months; Feb 29 only in leap years")
    func monthEnds() throws {
        #expect(runs(try cron("0 0 31 * *"), after: "2026-01-01T00:00:00Z", 7) ==
                ["2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
                 "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z"])
        #expect(runs(try cron("0 12 29 2 *"), after: "2026-03-01T00:00:00Z", 3) ==
                ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z", "2036-02-29T12:00:00Z"])
        // 2100 is not a leap year: 2096 is followed by 2104.
        #expect(runs(try cron("0 0 29 2 *"), after: "2096-03-01T00:00:00Z", 1) == ["2104-02-29T00:00:00Z"])
        #expect(runs(try cron("0 0 1 * *"), after: "2026-12-15T00:00:00Z", 2) == ["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"])
    }

    @Test("day-of-month and day-of-week both restricted: a day matches if either does")
    func domOrDow() throws {
        // The 1st and 15th, and every Friday, in December 2026 (Fridays: 4, 11, 18, 25).
        #expect(runs(try cron("0 0 1,15 * 5"), after: "2026-11-30T00:00:00Z", 6) ==
                ["2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-15T00:00:00Z",
                 "2026-12-18T00:00:00Z", "2026-12-25T00:00:00Z"])
        // Only one restricted: that one decides.
        #expect(runs(try cron("0 0 * * 5"), after: "2026-11-30T00:00:00Z", 2) == ["2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z"])
        #expect(runs(try cron("0 0 13 * *"), after: "2026-11-30T00:00:00Z", 1) == ["2026-12-13T00:00:00Z"])
        // A field starting with * counts as unrestricted (Vixie cron): odd days that are Fridays.
        #expect(runs(try cron("0 0 */2 * 5"), after: "2026-11-30T00:00:00Z", 2) == ["2026-12-11T00:00:00Z", "2026-12-25T00:00:00Z"])
    }

    @Test("lists, ranges, steps and names")
    func listsRangesSteps() throws {
        #expect(runs(try cron("0,30 9-10 * * *"), after: "2026-12-03T00:00:00Z", 5) ==
                ["2026-12-03T09:00:00Z", "2026-12-03T09:30:00Z", "2026-12-03T10:00:00Z", "2026-12-03T10:30:00Z", "2026-12-04T09:00:00Z"])
        #expect(runs(try cron("10-30/10 8 * * *"), after: "2026-12-03T00:00:00Z", 4) ==
                ["2026-12-03T08:10:00Z", "2026-12-03T08:20:00Z", "2026-12-03T08:30:00Z", "2026-12-04T08:10:00Z"])
        // Weekdays Monday to Friday, by name: from Friday Dec 4 to Monday Dec 7.
        #expect(runs(try cron("0 9 * * mon-fri"), after: "2026-12-04T10:00:00Z", 1) == ["2026-12-07T09:00:00Z"])
        #expect(runs(try cron("0 0 1 jan,jul *"), after: "2026-02-01T00:00:00Z", 2) == ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"])
        #expect(runs(try cron("@daily"), after: "2026-12-03T10:00:00Z", 1) == ["2026-12-04T00:00:00Z"])
        // Weekday range across Sunday as 7.
        #expect(runs(try cron("0 0 * * 5-7"), after: "2026-12-03T10:00:00Z", 3) ==
                ["2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z"])
    }

    @Test("Quartz six-field form: seconds 0, ? for no restriction, weekdays 1 = Sunday")
    func quartz() throws {
        #expect(runs(try cron("0 0/5 * * * ?"), after: "2026-12-03T10:03:00Z", 2) == ["2026-12-03T10:05:00Z", "2026-12-03T10:10:00Z"])
        // Quartz weekday 2 is Monday.
        #expect(runs(try cron("0 0 9 ? * 2"), after: "2026-12-03T10:00:00Z", 1) == ["2026-12-07T09:00:00Z"])
        #expect(runs(try cron("0 0 9 ? * MON"), after: "2026-12-03T10:00:00Z", 1) == ["2026-12-07T09:00:00Z"])
        #expect(error("30 0/5 * * * ?")?.message.contains("seconds") == true)
        #expect(error("0 0 9 ? * 2 2027")?.message.contains("year") == true)
    }

    @Test("invalid expressions are refused at schedule.cron with a message that says why")
    func invalid() {
        let cases: [(String, String)] = [
            ("", "five fields"),
            ("* * * *", "five fields"),
            ("60 * * * *", "minute field '60': 60 is out of range 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "runs backwards"),
            ("1,,2 * * * *", "empty list item"),
            ("a * * * *", "not a number"),
            ("* * * foo *", "not a number or a name"),
            ("+5 * * * *", "not a number"),
            ("0 0 L * *", "not supported"),
            ("0 0 * * 5#2", "not supported"),
            ("? * * * *", "'?' is only allowed"),
            ("0 0 30 2 *", "never matches"),
            ("0 0 31 4,6,9,11 *", "never matches"),
        ]
        for (expression, message) in cases {
            let e = error(expression)
            #expect(e?.path == "schedule.cron", "\(expression): \(String(describing: e))")
            #expect(e?.message.contains(message) == true, "\(expression): \(e?.message ?? "accepted")")
        }
        // Day 30 of February never comes, but a weekday does: with both restricted, it matches.
        #expect(error("0 0 30 2 1") == nil)
    }

    @Test("America/New_York spring forward: a wall time in the gap fires once, when the gap ends")
    func springForward() throws {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let daily = try cron("30 2 * * *", "America/New_York")
        #expect(runs(daily, after: "2026-03-07T00:00:00Z", 3) ==
                ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
        // Every 15 minutes: 01:45 EST, then 03:00 EDT (the gap's times fold onto it, once), 03:15 EDT.
        #expect(runs(try cron("*/15 * * * *", "America/New_York"), after: "2026-03-08T06:40:00Z", 3) ==
                ["2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"])
        // Times after the gap keep their local meaning: 09:00 EDT is 13:00 UTC.
        #expect(runs(try cron("0 9 * * *", "America/New_York"), after: "2026-03-07T20:00:00Z", 2) ==
                ["2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"])
    }

    @Test("America/New_York fall back: a wall time that happens twice fires once, at its first occurrence")
    func fallBack() throws {
        // 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00 UTC); 01:30 happens at 05:30 and 06:30 UTC.
        let daily = try cron("30 1 * * *", "America/New_York")
        #expect(runs(daily, after: "2026-10-31T12:00:00Z", 3) ==
                ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"])
        // Asked during the second 01:xx (06:10 UTC): today's 01:30 already fired.
        #expect(runs(daily, after: "2026-11-01T06:10:00Z", 1) == ["2026-11-02T06:30:00Z"])
        // Every 30 minutes: the repeated hour does not fire again.
        #expect(runs(try cron("*/30 * * * *", "America/New_York"), after: "2026-11-01T05:00:00Z", 3) ==
                ["2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z", "2026-11-01T07:30:00Z"])
    }

    @Test("missed runs: only the latest due run fires, the rest are counted; expires_at ends the series")
    func decide() throws {
        let hourly = try cron("0 * * * *")
        let due = t("2026-12-01T00:00:00Z")
        // On time.
        #expect(hourly.decide(waitingFor: due, now: t("2026-12-01T00:00:00.020Z"), expiresAt: nil) ==
                .run(at: due, skipped: 0, next: t("2026-12-01T01:00:00Z")))
        // Two days late: the 10:00 run of Dec 3 fires, 58 before it are skipped.
        #expect(hourly.decide(waitingFor: due, now: t("2026-12-03T10:20:00Z"), expiresAt: nil) ==
                .run(at: t("2026-12-03T10:00:00Z"), skipped: 58, next: t("2026-12-03T11:00:00Z")))
        // Not yet due.
        #expect(hourly.decide(waitingFor: due, now: t("2026-11-30T23:59:00Z"), expiresAt: nil) == .wait(until: due))
        // The run before expires_at fires and is the last; nothing at or after it.
        #expect(hourly.decide(waitingFor: due, now: t("2026-12-01T00:00:01Z"), expiresAt: t("2026-12-01T01:00:00Z")) ==
                .run(at: due, skipped: 0, next: nil))
        #expect(hourly.decide(waitingFor: due, now: t("2026-12-01T00:30:00Z"), expiresAt: t("2026-12-01T00:10:00Z")) == .over)
        #expect(hourly.decide(waitingFor: due, now: t("2026-11-30T00:00:00Z"), expiresAt: t("2026-12-01T00:00:00Z")) == .over)
        // A weekly series a year late fires one run: the last Monday.
        let weekly = try cron("0 9 * * 1", "Asia/Shanghai")
        #expect(weekly.decide(waitingFor: t("2025-12-01T01:00:00Z"), now: t("2026-12-03T10:00:00Z"), expiresAt: nil) ==
                .run(at: t("2026-11-30T01:00:00Z"), skipped: 52, next: t("2026-12-07T01:00:00Z")))
        // Every minute, a month late: still one run, found quickly.
        let minutely = try cron("* * * * *")
        let start = ContinuousClock.now
        #expect(minutely.decide(waitingFor: t("2026-11-01T00:00:00Z"), now: t("2026-12-03T10:00:30Z"), expiresAt: nil) ==
                .run(at: t("2026-12-03T10:00:00Z"), skipped: 10_000, next: t("2026-12-03T10:01:00Z")))
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test("run ids: <campaign_id>@<RFC 3339 UTC, whole seconds>")
    func runIDs() {
        #expect(CampaignRun.id(of: "weekly", at: t("2026-12-07T01:00:00Z")) == "weekly@2026-12-07T01:00:00Z")
        #expect(CampaignRun.parse("weekly@2026-12-07T01:00:00Z")?.parent == "weekly")
        #expect(CampaignRun.parse("weekly@2026-12-07T01:00:00.000Z") == nil)
        #expect(CampaignRun.parse("weekly@tomorrow") == nil)
        #expect(CampaignRun.parse("weekly") == nil)
    }
}
