import Foundation
import ReachCore
import Testing

@Suite("campaign task validation (SPEC §3.1)")
struct TaskParserTests {
    let parser = TaskParser(channels: ["sms", "push", "email", "inapp", "webhook"])

    func parse(_ json: String) throws -> TaskMessage { try parser.parse(Array(json.utf8)) }

    func error(_ json: String) -> ValidationError? {
        do {
            _ = try parse(json)
            return nil
        } catch let e as ValidationError {
            return e
        } catch {
            return ValidationError("?", "\(error)")
        }
    }

    @Test("SPEC's example parses into a campaign")
    func specExample() throws {
        let task = try parse("""
            {"kind": "campaign", "campaign_id": "spring-sale-2026", "name": "Spring sale",
             "segment": {"id": "vip"}, "channels": {"sms": 70, "push": 30}, "fallback": ["email", "inapp"],
             "template": {"title": "Hi {{name}}", "body": "{{name}}, your coupon {{data.coupon}} expires soon",
                          "channels": {"email": {"title": "A gift for you", "body": "..."}}},
             "data": {"coupon": "SPRING10"}, "schedule": {"at": "2026-11-23T09:00:00Z"},
             "expires_at": "2026-11-24T00:00:00Z", "quiet_hours": true, "unknown_field": 1}
            """)
        guard case .campaign(let c) = task else { Issue.record("not a campaign"); return }
        #expect(c.campaignID == "spring-sale-2026")
        #expect(c.segment == .id("vip"))
        #expect(c.weights == [.init("push", 30), .init("sms", 70)])
        #expect(c.fallback == ["email", "inapp"])
        #expect(c.template.sources(for: "email").title == "A gift for you")
        #expect(c.template.sources(for: "sms").title == "Hi {{name}}")
        #expect(c.data["coupon"] == .string("SPRING10"))
        #expect(c.schedule == .at(RFC3339.parse("2026-11-23T09:00:00Z")!))
        #expect(c.expiresAt == RFC3339.parse("2026-11-24T00:00:00Z"))
        #expect(c.quietHours)
    }

    @Test("control messages")
    func control() throws {
        #expect(try parse(#"{"kind":"pause","campaign_id":"c1"}"#) == .pause(campaignID: "c1"))
        #expect(try parse(#"{"kind":"resume","campaign_id":"c1"}"#) == .resume(campaignID: "c1"))
        #expect(try parse(#"{"kind":"cancel","campaign_id":"c1"}"#) == .cancel(campaignID: "c1"))
    }

    @Test("each kind of bad input is refused with the field's path")
    func refusals() {
        let base = #""kind":"campaign","campaign_id":"c1","segment":{"id":"s"},"channels":{"sms":1},"template":{"body":"b"}"#
        let cases: [(String, String)] = [
            ("not json", ""),
            ("[1,2]", ""),
            (#"{"campaign_id":"c1"}"#, "kind"),
            (#"{"kind":"explode","campaign_id":"c1"}"#, "kind"),
            (#"{"kind":"pause","campaign_id":"bad id!"}"#, "campaign_id"),
            (#"{"kind":"pause","campaign_id":"\#(String(repeating: "x", count: 129))"}"#, "campaign_id"),
            (#"{"kind":"campaign","campaign_id":"c1","channels":{"sms":1},"template":{"body":"b"}}"#, "segment"),
            ("{\(base.replacingOccurrences(of: #"{"id":"s"}"#, with: #"{"id":"s","user_ids":["u"]}"#))}", "segment"),
            ("{\(base.replacingOccurrences(of: #"{"id":"s"}"#, with: #"{"user_ids":[]}"#))}", "segment.user_ids"),
            ("{\(base.replacingOccurrences(of: #"{"id":"s"}"#, with: #"{"user_ids":["a", 3]}"#))}", "segment.user_ids[1]"),
            ("{\(base.replacingOccurrences(of: #"{"sms":1}"#, with: #"{"fax":1}"#))}", "channels.fax"),
            ("{\(base.replacingOccurrences(of: #"{"sms":1}"#, with: #"{"sms":-1}"#))}", "channels.sms"),
            ("{\(base.replacingOccurrences(of: #"{"sms":1}"#, with: #"{"sms":1.5}"#))}", "channels.sms"),
            ("{\(base.replacingOccurrences(of: #"{"sms":1}"#, with: #"{"sms":0}"#))}", "channels"),
            ("{\(base),\"fallback\":[\"email\",\"email\"]}", "fallback[1]"),
            ("{\(base.replacingOccurrences(of: #"{"body":"b"}"#, with: #"{"title":"t"}"#))}", "template.body"),
            ("{\(base.replacingOccurrences(of: #"{"body":"b"}"#, with: #"{"body":"{{#open}} never closed"}"#))}", "template.body"),
            ("{\(base.replacingOccurrences(of: #"{"body":"b"}"#, with: #"{"body":"b","channels":{"sms":{"title":"{{/x}}"}}}"#))}",
             "template.channels.sms.title"),
            ("{\(base),\"schedule\":{\"at\":\"tomorrow\"}}", "schedule.at"),
            ("{\(base),\"schedule\":{\"delay_seconds\":-5}}", "schedule.delay_seconds"),
            ("{\(base),\"schedule\":{\"at\":\"2026-11-23T09:00:00Z\"},\"expires_at\":\"2026-11-22T09:00:00Z\"}", "expires_at"),
            ("{\(base),\"quiet_hours\":\"yes\"}", "quiet_hours"),
            ("{\(base),\"data\":[1]}", "data"),
        ]
        for (json, path) in cases {
            let e = error(json)
            #expect(e != nil, "accepted: \(json)")
            #expect(e?.path == path, "\(json) → \(String(describing: e))")
            #expect(!(e?.message.isEmpty ?? true))
        }
    }

    @Test("times with offsets and fractions; duplicate user ids collapse")
    func details() throws {
        #expect(RFC3339.parse("2026-11-23T17:00:00+08:00") == RFC3339.parse("2026-11-23T09:00:00Z"))
        #expect(RFC3339.parse("2026-11-23T09:00:00.250Z") != nil)
        let task = try parse(#"{"kind":"campaign","campaign_id":"c","segment":{"user_ids":["a","b","a"]},"channels":{"sms":1},"template":{"body":"x"}}"#)
        guard case .campaign(let c) = task else { Issue.record("not a campaign"); return }
        #expect(c.segment == .userIDs(["a", "b"]))
        #expect(c.schedule == .now && c.quietHours && c.fallback.isEmpty)
    }

    @Test("schedule.cron: recurring, in its time zone (UTC by default); bad expressions and zones name their field")
    func cronSchedule() throws {
        let base = #""kind":"campaign","campaign_id":"weekly","segment":{"id":"s"},"channels":{"sms":1},"template":{"body":"b"}"#
        guard case .campaign(let c) = try parse(#"{\#(base),"schedule":{"cron":"0 9 * * 1","timezone":"Asia/Shanghai"},"expires_at":"2027-01-01T00:00:00Z"}"#),
              case .cron(let cron) = c.schedule else { Issue.record("not a recurring campaign"); return }
        #expect(cron.timeZone.identifier == "Asia/Shanghai")
        #expect(c.schedule.isRecurring)
        // expires_at ends the series: it is not compared with a run here (a stored task is parsed again later).
        #expect(c.expiresAt == RFC3339.parse("2027-01-01T00:00:00Z"))
        // The first run is the due date: Monday 09:00 Shanghai after a Thursday.
        #expect(c.schedule.dueDate(acceptedAt: RFC3339.parse("2026-12-03T10:00:00Z")!) == RFC3339.parse("2026-12-07T01:00:00Z"))
        guard case .campaign(let utc) = try parse(#"{\#(base),"schedule":{"cron":"*/5 * * * *"}}"#),
              case .cron(let inUTC) = utc.schedule else { Issue.record("not a recurring campaign"); return }
        #expect(inUTC.timeZone.secondsFromGMT(for: Date()) == 0)
        for zone in ["America/New_York", "Europe/Berlin", "Etc/UTC", "UTC"] {
            #expect(error(#"{\#(base),"schedule":{"cron":"0 9 * * 1","timezone":"\#(zone)"}}"#) == nil, "\(zone)")
        }
        // Quartz's six fields are accepted.
        #expect(error(#"{\#(base),"schedule":{"cron":"0 0/5 * * * ?"}}"#) == nil)

        let cases: [(String, String)] = [
            (#"{"cron":"0 9 * *"}"#, "schedule.cron"),
            (#"{"cron":"61 * * * *"}"#, "schedule.cron"),
            (#"{"cron":5}"#, "schedule.cron"),
            (#"{"cron":"0 9 * * 1","timezone":"Mars/Olympus"}"#, "schedule.timezone"),
            (#"{"cron":"0 9 * * 1","timezone":"EST"}"#, "schedule.timezone"),
            (#"{"cron":"0 9 * * 1","timezone":8}"#, "schedule.timezone"),
            (#"{"cron":"0 9 * * 1","timezone":"../../etc/passwd"}"#, "schedule.timezone"),
            (#"{"cron":"0 9 * * 1","timezone":"asia/shanghai"}"#, "schedule.timezone"),
            (#"{"cron":"0 9 * * 1","at":"2026-11-23T09:00:00Z"}"#, "schedule"),
            (#"{"timezone":"Asia/Shanghai"}"#, "schedule"),
        ]
        for (schedule, path) in cases {
            #expect(error(#"{\#(base),"schedule":\#(schedule)}"#)?.path == path, "\(schedule)")
        }
    }

    @Test("run ids (<id>@<time>) only in stored tasks and control messages, never in a published campaign")
    func runIDs() throws {
        let run = #""kind":"campaign","campaign_id":"weekly@2026-12-07T01:00:00Z","segment":{"id":"s"},"channels":{"sms":1},"template":{"body":"b"}"#
        #expect(error("{\(run)}")?.path == "campaign_id")
        let stored = TaskParser(channels: ["sms"], acceptsRunIDs: true)
        guard case .campaign(let c) = try stored.parse(Array("{\(run)}".utf8)) else { Issue.record("not a campaign"); return }
        #expect(c.campaignID == "weekly@2026-12-07T01:00:00Z")
        #expect(try parse(#"{"kind":"cancel","campaign_id":"weekly@2026-12-07T01:00:00Z"}"#) == .cancel(campaignID: "weekly@2026-12-07T01:00:00Z"))
        #expect(error(#"{"kind":"cancel","campaign_id":"weekly@monday"}"#)?.path == "campaign_id")
        #expect(error(#"{"kind":"cancel","campaign_id":"bad id@2026-12-07T01:00:00Z"}"#)?.path == "campaign_id")
    }
}

@Suite("segment rules: parsing and SQL with bound parameters only")
struct SegmentRuleTests {
    func rule(_ json: String) throws -> SegmentRule {
        try SegmentRule.parse(try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)))
    }

    @Test("SPEC §4.3's example compiles; every value and attrs key is a parameter")
    func specExample() throws {
        let r = try rule(#"""
            {"all": [{"attr": "city", "op": "eq", "value": "Shanghai"},
                     {"any": [{"attr": "level", "op": "gte", "value": 3},
                              {"attr": "tags", "op": "contains", "value": "vip"}]}]}
            """#)
        let sql = r.sql(alias: "r", firstParameter: 3)
        #expect(sql.parameters == ["city", "\"Shanghai\"", "level", "3", "tags", "[\"vip\"]"])
        #expect(sql.predicate.contains("$3") && sql.predicate.contains("$8") && !sql.predicate.contains("$9"))
        #expect(!sql.predicate.contains("Shanghai") && !sql.predicate.contains("vip") && !sql.predicate.contains("city"))
    }

    @Test("hostile values and attribute names never reach the SQL text")
    func hostile() throws {
        let hostile = "x'); DROP TABLE reach.recipients; --"
        let r = SegmentRule.any([
            .condition(attr: hostile, op: .eq, value: .string(hostile)),
            .condition(attr: "name", op: .in, value: .array([.string(hostile), .string("名前\"\\")])),
        ])
        let sql = r.sql()
        #expect(!sql.predicate.contains("DROP") && !sql.predicate.contains("名前"))
        #expect(sql.parameters.contains(hostile))
    }

    @Test("unknown ops, malformed rules and wrong value types are refused with their path")
    func refusals() {
        let cases: [(String, String)] = [
            (#"{"attr":"city","op":"like","value":"%"}"#, "rule.op"),
            (#"{"attr":"city","value":"x"}"#, "rule.op"),
            (#"{"attr":"city","op":"eq"}"#, "rule.value"),
            (#"{"op":"eq","value":"x"}"#, "rule.attr"),
            (#"{"all":[]}"#, "rule.all"),
            (#"{"all":[{"attr":"a","op":"eq","value":1}],"any":[]}"#, "rule"),
            (#"{"any":[{"attr":"a","op":"in","value":"notalist"}]}"#, "rule.any[0].value"),
            (#"{"attr":"a","op":"exists","value":"yes"}"#, "rule.value"),
            (#"{"attr":"name","op":"contains","value":"x"}"#, "rule.op"),
            (#"{"attr":"phone","op":"eq","value":138}"#, "rule.value"),
            (#"{"attr":"a","op":"eq","value":null}"#, "rule.value"),
            (#"{"attr":"a","op":"eq","value":{"x":1}}"#, "rule.value"),
            (#"{"attr":"a","op":"eq","value":1,"extra":true}"#, "rule"),
            ("[1]", "rule"),
        ]
        for (json, path) in cases {
            do {
                _ = try rule(json)
                Issue.record("accepted \(json)")
            } catch let e as ValidationError {
                #expect(e.path == path, "\(json) → \(e)")
            } catch {
                Issue.record("\(json): \(error)")
            }
        }
        var deep = #"{"attr":"a","op":"eq","value":1}"#
        for _ in 0..<9 { deep = #"{"all":[\#(deep)]}"# }
        #expect(throws: ValidationError.self) { try rule(deep) }
    }
}
