import Foundation
import ReachCore
import Testing

@Suite("quiet hours in the user's own time zone")
struct QuietHoursTests {
    let quiet = QuietHours(start: "21:00", end: "08:00", defaultTimeZone: "Asia/Shanghai")!

    @Test("a user in UTC+8 inside the window is deferred to its end, their 08:00")
    func shanghaiNight() {
        let now = RFC3339.parse("2026-11-22T15:30:00Z")!  // 23:30 in Shanghai
        #expect(quiet.deferral(now: now, timezone: "Asia/Shanghai") == RFC3339.parse("2026-11-23T00:00:00Z"))  // 08:00 +08:00
        #expect(quiet.deferral(now: now, timezone: "UTC") == nil, "15:30 in UTC is outside the window")
        #expect(quiet.deferral(now: now, timezone: nil) == RFC3339.parse("2026-11-23T00:00:00Z"), "default zone")
        #expect(quiet.deferral(now: now, timezone: "Not/AZone") == RFC3339.parse("2026-11-23T00:00:00Z"), "unknown zone: default")
    }

    @Test("after midnight, still inside; the window's edges")
    func edges() {
        let early = RFC3339.parse("2026-11-22T21:59:00Z")!  // 05:59 next day in Shanghai
        #expect(quiet.deferral(now: early, timezone: "Asia/Shanghai") == RFC3339.parse("2026-11-23T00:00:00Z"))
        #expect(quiet.deferral(now: RFC3339.parse("2026-11-23T00:00:00Z")!, timezone: "Asia/Shanghai") == nil, "08:00 sharp is open")
        #expect(quiet.deferral(now: RFC3339.parse("2026-11-22T12:59:00Z")!, timezone: "Asia/Shanghai") == nil, "20:59 is open")
        #expect(quiet.deferral(now: RFC3339.parse("2026-11-22T13:00:00Z")!, timezone: "Asia/Shanghai") == RFC3339.parse("2026-11-23T00:00:00Z"))
        let day = QuietHours(start: "12:00", end: "13:00", defaultTimeZone: "UTC")!
        #expect(day.deferral(now: RFC3339.parse("2026-11-22T12:30:00Z")!, timezone: nil) == RFC3339.parse("2026-11-22T13:00:00Z"))
        #expect(QuietHours(start: "25:00", end: "08:00", defaultTimeZone: "UTC") == nil)
    }
}
