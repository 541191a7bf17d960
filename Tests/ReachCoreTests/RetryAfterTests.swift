import Foundation
import ReachCore
import Testing

@Suite("Retry-After: delay-seconds and HTTP-date (RFC 9110 §10.2.3, §5.6.7)")
struct RetryAfterTests {
    /// 2026-10-21T07:27:30Z, a Wednesday.
    let now = Date(timeIntervalSince1970: 1_792_567_650)

    @Test("delay-seconds: whole seconds, capped; anything else that is not a date is ignored")
    func deltaSeconds() {
        #expect(RetryAfter.delay("7", now: now) == .seconds(7))
        #expect(RetryAfter.delay(" 120 ", now: now) == .seconds(120))
        #expect(RetryAfter.delay("0", now: now) == .zero)
        #expect(RetryAfter.delay("999999999", now: now) == RetryAfter.maximum)
        #expect(RetryAfter.delay("99999999999999999999999", now: now) == RetryAfter.maximum, "too many digits for an Int is still far")
        #expect(RetryAfter.delay("", now: now) == nil)
        #expect(RetryAfter.delay("-5", now: now) == nil)
        #expect(RetryAfter.delay("1.5", now: now) == nil)
        #expect(RetryAfter.delay("soon", now: now) == nil)
    }

    @Test("IMF-fixdate: the wait until then; a date in the past is 0; a date far ahead is capped")
    func imfFixdate() {
        #expect(RetryAfter.delay("Wed, 21 Oct 2026 07:28:00 GMT", now: now) == .seconds(30))
        #expect(RetryAfter.delay("Wed, 21 Oct 2026 07:00:00 GMT", now: now) == .zero)
        #expect(RetryAfter.delay("Sun, 06 Nov 1994 08:49:37 GMT", now: now) == .zero)
        #expect(RetryAfter.delay("Fri, 31 Dec 9999 23:59:59 GMT", now: now) == RetryAfter.maximum)
        #expect(RetryAfter.delay("Thu, 22 Oct 2026 07:27:30 GMT", now: now, maximum: .seconds(172_800)) == .seconds(86_400))
    }

    @Test("HTTPDate.format writes the IMF-fixdate that parse reads back")
    func format() {
        let instant = Date(timeIntervalSince1970: 784_111_777)
        #expect(HTTPDate.format(instant) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.parse(HTTPDate.format(instant)) == instant)
    }

    @Test("the three HTTP-date forms name the same instant")
    func forms() {
        let expected = Date(timeIntervalSince1970: 784_111_777)  // 1994-11-06T08:49:37Z
        let reference = Date(timeIntervalSince1970: 1_792_567_650)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: reference) == expected)
        #expect(HTTPDate.parse("Sunday, 06-Nov-94 08:49:37 GMT", now: reference) == expected)
        #expect(HTTPDate.parse("Sun Nov  6 08:49:37 1994", now: reference) == expected)
        #expect(HTTPDate.parse("Sun Nov 6 08:49:37 1994", now: reference) == expected)
    }

    @Test("RFC 850's two-digit year: more than 50 years ahead means the century before")
    func twoDigitYear() throws {
        let y2026 = Date(timeIntervalSince1970: 1_792_567_650)
        #expect(HTTPDate.parse("Wednesday, 21-Oct-26 07:28:00 GMT", now: y2026).map(\.timeIntervalSince1970) == 1_792_567_680)
        let seventySix = try #require(HTTPDate.parse("Wednesday, 01-Jan-76 00:00:00 GMT", now: y2026))
        #expect(RFC3339.format(seventySix).hasPrefix("2076-01-01"), "50 years ahead: still this century")
        let seventySeven = try #require(HTTPDate.parse("Saturday, 01-Jan-77 00:00:00 GMT", now: y2026))
        #expect(RFC3339.format(seventySeven).hasPrefix("1977-01-01"))
    }

    @Test("malformed dates are refused", arguments: [
        "Wed, 21 Oct 2026 07:28:00",         // no zone
        "Wed, 21 Oct 2026 07:28:00 CET",     // only GMT
        "Wed, 21 Foo 2026 07:28:00 GMT",
        "Wed, 31 Sep 2026 07:28:00 GMT",     // no such day
        "Wed, 29 Feb 2026 07:28:00 GMT",     // not a leap year
        "Wed, 21 Oct 2026 24:00:00 GMT",
        "Wed, 21 Oct 2026 07:60:00 GMT",
        "Wed, 21 Oct 2026 7:28:00 GMT",
        "Wed, 21 Oct 26 07:28:00 GMT",       // IMF needs four digits
        "Xyz, 21 Oct 2026 07:28:00 GMT",
        "Wed 21 Oct 2026 07:28:00 GMT",
        "Wednesday, 21-Oct-2026 07:28:00 GMT",
        "Wed Oct 21 07:28:00 26",
        "2026-10-21T07:28:00Z",
    ])
    func malformed(_ text: String) {
        #expect(HTTPDate.parse(text, now: now) == nil)
        #expect(RetryAfter.delay(text, now: now) == nil)
    }

    @Test("a leap second is read as the next second; February 29th of a leap year exists")
    func edges() {
        #expect(HTTPDate.parse("Wed, 21 Oct 2026 07:27:60 GMT", now: now).map(\.timeIntervalSince1970) == 1_792_567_680)
        #expect(HTTPDate.parse("Thu, 29 Feb 2024 00:00:00 GMT", now: now) != nil)
    }
}
