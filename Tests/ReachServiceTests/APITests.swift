import Foundation
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachRedis
import ReachService
import Testing
import Synchronization
import TestSupport

/// The operator API over real HTTP against the real servers (SPEC §7).
@Suite("operator API: /v1 over HTTP")
struct APITests {
    /// Every operation of the OpenAPI document, with a concrete path.
    static func operations() throws -> [(method: String, path: String, scope: String)] {
        let doc = try #require(OpenAPIDocument.json)
        let paths = try #require((try JSONSerialization.jsonObject(with: Data(doc.utf8)) as? [String: Any])?["paths"] as? [String: [String: Any]])
        var out: [(String, String, String)] = []
        for (path, item) in paths where path.hasPrefix("/v1") {
            for method in ["get", "post", "put", "delete"] {
                guard let op = item[method] as? [String: Any] else { continue }
                let concrete = path.replacingOccurrences(of: "{user_id}", with: "u00001").replacingOccurrences(of: "{name}", with: "sms")
                    .replacingOccurrences(of: "{id}", with: path.hasPrefix("/v1/inbox") ? "1" : "nope")
                out.append((method.uppercased(), concrete, op["x-scope"] as? String ?? "?"))
            }
        }
        return out.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
    }

    @Test("every route × {no token, bad token, read, write}: 401, 401, 403 for too little scope, admitted otherwise; errors are JSON; write calls audited")
    func authMatrix() async throws {
        let api = try await APIHarness.start()
        defer { api.stop() }
        let operations = try Self.operations()
        #expect(operations.count == 20, "\(operations.map { "\($0.method) \($0.path)" })")
        for op in operations {
            let body = op.method == "POST" || op.method == "PUT" ? "{}" : nil
            let none = try await api.call(op.method, op.path, token: nil, body: body)
            #expect(none.status == 401 && none.errorCode == "unauthorized", "\(op.method) \(op.path) without token: \(none.status) \(none.body)")
            #expect(none.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            let bad = try await api.call(op.method, op.path, token: APIHarness.writeToken + "x", body: body)
            #expect(bad.status == 401, "\(op.method) \(op.path) with a bad token: \(bad.status)")
            let read = try await api.call(op.method, op.path, token: APIHarness.readToken, body: body)
            if op.scope == "write" {
                #expect(read.status == 403 && read.errorCode == "forbidden", "\(op.method) \(op.path) read token: \(read.status) \(read.body)")
            } else {
                #expect(![401, 403].contains(read.status), "\(op.method) \(op.path) read token: \(read.status) \(read.body)")
            }
            let write = try await api.call(op.method, op.path, token: APIHarness.writeToken, body: body)
            #expect(![401, 403, 500].contains(write.status), "\(op.method) \(op.path) write token: \(write.status) \(write.body)")
            #expect(write.json["error"] != nil || (200..<300).contains(write.status), "\(op.method) \(op.path): \(write.body)")
        }
        // Open routes stay open.
        for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
            #expect(try await api.call("GET", path, token: nil).status == 200, "\(path)")
        }
        let unknown = try await api.call("GET", "/v1/nothing-here")
        #expect(unknown.status == 404 && unknown.errorCode == "not_found")

        // Each write call left a row: 4 per write route (none, bad, read, write), token name only when it was valid.
        let writes = operations.filter { $0.scope == "write" && $0.method != "GET" }
        let rows = try await api.pg.query("SELECT token_name, status, route, body FROM reach.audit")
        #expect(rows.count == writes.count * 4, "audit rows \(rows.count) for \(writes.count) write routes")
        #expect(Set(rows.compactMap { $0[0] }) == ["ops", "viewer"])
        #expect(rows.filter { $0[0] == nil }.allSatisfy { $0.int(1) == 401 })
        let all = rows.map { "\($0[0] ?? "") \($0[2] ?? "") \($0[3] ?? "")" }.joined()
        #expect(!all.contains(APIHarness.writeToken) && !all.contains(APIHarness.readToken), "no token in the audit trail")
        let metrics = try await api.call("GET", "/metrics", token: nil)
        #expect(metrics.body.contains(#"reach_http_requests_total{route="/v1/campaigns/{id}/pause",method="POST",status="403"}"#))
    }

    @Test("the OpenAPI document validates, is the one served and compiled in, and names exactly the router's routes and scopes")
    func openAPIDocument() async throws {
        let file = TestEnvironment.packageRoot.appendingPathComponent("deploy/openapi.yaml")
        let validator = try await blocking { try run("sh", ["-c", "openapi-spec-validator \(file.path) 2>&1; echo exit=$?"]) }
        #expect(validator.contains("OK") && validator.contains("exit=0"), "\(validator)")
        #expect(try String(contentsOf: file, encoding: .utf8) == OpenAPIDocument.yaml + "\n" || (try String(contentsOf: file, encoding: .utf8)) == OpenAPIDocument.yaml,
                "deploy/openapi.yaml changed: run scripts/openapi-embed")

        var c = try await testConfiguration()
        var sms = ChannelSettings()
        sms.path = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("sms")).path
        c.channels = ["sms": sms]
        let infrastructure = try Infrastructure(configuration: c, logger: .init(label: "test"))
        defer { infrastructure.shutdown() }
        let api = OperatorAPI(infrastructure: infrastructure, rules: nil, wake: {})
        let routes = Set(api.routes.map { "\($0.method.rawValue) \($0.path) \($0.scope.rawValue)" })
        let json = try #require(OpenAPIDocument.json)
        let doc = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, item) in doc where path.hasPrefix("/v1") {
            for method in ["get", "post", "put", "delete"] {
                if let op = item[method] as? [String: Any] { documented.insert("\(method.uppercased()) \(path) \(op["x-scope"] as? String ?? "?")") }
            }
        }
        #expect(routes == documented, "router only: \(routes.subtracting(documented)); document only: \(documented.subtracting(routes))")
        #expect(Set(doc.keys.filter { !$0.hasPrefix("/v1") }) == ["/healthz", "/readyz", "/metrics", "/openapi.json", "/console"])

        let (port, task) = try await startDaemon(c)
        defer { task.cancel() }
        let served = try await get("http://127.0.0.1:\(port)/openapi.json")
        #expect(served.status == 200 && served.body == OpenAPIDocument.json)
    }

    @Test("bodies: too big 413, malformed 400, wrong types and unknown fields 400 with their path, NUL and invalid UTF-8 refused, nothing created")
    func badBodies() async throws {
        let api = try await APIHarness.start { $0.http.maxBodyBytes = 4096 }
        defer { api.stop() }
        let big = try await api.call("POST", "/v1/campaigns", body: "{\"name\":\"" + String(repeating: "x", count: 5000) + "\"}")
        #expect(big.status == 413 && big.errorCode == "payload_too_large", "\(big.status) \(big.body)")
        let cases: [(String, String?)] = [
            (#"{"campaign_id": "a", "#, nil),
            (#"[1,2]"#, nil),
            (#"{"campaign_id": 5, "segment": {"id": "all"}, "channels": {"sms": 1}, "template": {"body": "x"}}"#, "campaign_id"),
            (#"{"campaign_id": "a", "segment": {"id": "all"}, "channels": {"sms": 1}, "template": {"body": "x"}, "chanels": {}}"#, "chanels"),
            (#"{"campaign_id": "a", "segment": {"idd": "all"}, "channels": {"sms": 1}, "template": {"body": "x"}}"#, "segment.idd"),
            (#"{"campaign_id": "a", "segment": {"id": "all"}, "channels": {"sms": "lots"}, "template": {"body": "x"}}"#, "channels.sms"),
            (#"{"campaign_id": "a", "segment": {"id": "all"}, "channels": {"fax": 1}, "template": {"body": "x"}}"#, "channels.fax"),
            (#"{"campaign_id": "a\u0000", "segment": {"id": "all"}, "channels": {"sms": 1}, "template": {"body": "x"}}"#, "campaign_id"),
            (#"{"kind": "pause", "campaign_id": "a"}"#, "kind"),
        ]
        for (body, field) in cases {
            let reply = try await api.call("POST", "/v1/campaigns", body: body)
            #expect(reply.status == 400 && reply.errorCode == "invalid_request", "\(body): \(reply.status) \(reply.body)")
            if let field { #expect(reply.errorField == field, "\(body): \(reply.body)") }
        }
        var invalidUTF8 = Array(#"{"campaign_id": "a", "name": "x"#.utf8)
        invalidUTF8 += [0xC3, 0x28]
        invalidUTF8 += Array(#"", "segment": {"id": "all"}, "channels": {"sms": 1}, "template": {"body": "x"}}"#.utf8)
        let utf8 = try await api.call("POST", "/v1/campaigns", bytes: invalidUTF8)
        #expect(utf8.status == 400, "\(utf8.body)")
        let trigger = try await api.call("POST", "/v1/triggers", body: #"{"id": "t1", "event": "e", "channels": {"sms": 1}, "template": {"body": "{{#x}}"}}"#)
        #expect(trigger.status == 400 && trigger.errorField?.hasPrefix("template") == true, "\(trigger.body)")
        // Every body route with junk bytes (NUL, invalid UTF-8, deep nesting, huge numbers): a 4xx, never a crash or a 5xx.
        var rng = SplitMix64(seed: 0x5EED)
        let junk: [[UInt8]] = (0..<12).map { _ in (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } } + [
            Array(String(repeating: "[", count: 5000).utf8), Array(#"{"campaign_id": 1e999}"#.utf8), [0x7B, 0x00, 0x7D],
            Array(#"{"segment": {"rule": {"all": []}}}"#.utf8), Array(#"{"ids": [-1]}"#.utf8), Array(#"{"id": "x", "event": "e", "channels": {"sms": 1e308}}"#.utf8),
        ]
        for path in ["/v1/campaigns", "/v1/segments/preview", "/v1/triggers", "/v1/dead-letters/replay"] {
            for bytes in junk {
                let reply = try await api.call("POST", path, bytes: bytes)
                #expect((400..<500).contains(reply.status) && reply.errorCode != nil, "\(path) with \(bytes.prefix(40)): \(reply.status) \(reply.body)")
            }
        }
        for bytes in junk {
            let reply = try await api.call("PUT", "/v1/triggers/junk", bytes: bytes)
            #expect((400..<500).contains(reply.status), "PUT with \(bytes.prefix(40)): \(reply.status) \(reply.body)")
        }
        #expect(try await api.pg.query("SELECT count(*) FROM reach.campaigns").first?.int(0) == 0)
        #expect(try await api.pg.query("SELECT count(*) FROM reach.triggers").first?.int(0) == 0)
        // The daemon is still serving.
        #expect(try await api.call("GET", "/v1/campaigns").status == 200)
    }

    @Test("a campaign created through the API runs to done; pause (under a rate limit and a slow provider), resume and cancel go through the control path (404, 409); lists page")
    func campaignLifecycle() async throws {
        let api = try await APIHarness.start(users: 400, providerDelay: .milliseconds(150), recordRequests: true) { c in
            c.pipeline.pageSize = 100
            c.channels["sms"]?.batchSize = 20
            c.channels["sms"]?.concurrency = 1
            c.channels["sms"]?.ratePerSecond = 60
        }
        defer { api.stop() }
        let task = #"{"campaign_id": "api-1", "name": "API", "segment": {"id": "all"}, "channels": {"sms": 1}, "fallback": ["inapp"], "template": {"body": "hi {{name}}"}}"#
        let created = try await api.call("POST", "/v1/campaigns", body: task)
        #expect(created.status == 202 && created.headers["location"] == "/v1/campaigns/api-1", "\(created.status) \(created.body)")
        #expect(created.json["existing"] as? Bool == false)
        #expect(try await eventually(timeout: .seconds(20)) { try await api.call("GET", "/v1/campaigns/api-1").json["state"] as? String == "running" })
        let again = try await api.call("POST", "/v1/campaigns", body: task)
        #expect(again.status == 202 && again.json["existing"] as? Bool == true)

        let paused = try await api.call("POST", "/v1/campaigns/api-1/pause")
        #expect(paused.status == 200 && paused.json["state"] as? String == "paused", "\(paused.body)")
        let pausedAt = Date()
        #expect(try await api.call("POST", "/v1/campaigns/api-1/pause").status == 409)
        try await Task.sleep(for: .seconds(2))
        let held = api.provider.stats.messages
        try await Task.sleep(for: .seconds(1))
        #expect(api.provider.stats.messages == held, "no requests while paused")
        let late = api.provider.requests.filter { $0.arrivedAt > pausedAt.addingTimeInterval(2) }
        #expect(late.isEmpty, "no provider request starts later than 2 s after the pause answered: \(late.map(\.arrivedAt))")
        #expect(try await api.call("POST", "/v1/campaigns/api-1/resume").status == 200)
        #expect(try await eventually(timeout: .seconds(60)) { try await api.call("GET", "/v1/campaigns/api-1").json["state"] as? String == "done" })
        let done = try await api.call("GET", "/v1/campaigns/api-1").json
        let counters = done["counters"] as? [String: Int]
        #expect(counters?["targeted"] == 400)
        let progress = done["progress"] as? [String: Any]
        #expect(progress?["done"] as? Int == 400 && progress?["total"] as? Int == 400, "\(done)")
        let channels = done["channels"] as? [String: [String: Int]]
        #expect((channels?["sms"]?["sent"] ?? 0) + (channels?["inapp"]?["sent"] ?? 0) == counters?["sent"], "\(done)")
        #expect(try await api.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'api-1'").first?.int(0) == 400)
        #expect(try await api.call("POST", "/v1/campaigns/api-1/cancel").status == 409)
        #expect(try await api.call("POST", "/v1/campaigns/none/cancel").status == 404)
        #expect(try await api.call("GET", "/v1/campaigns/none").status == 404)

        // A second campaign, cancelled while it waits; then the list in pages of one.
        let later = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "api-2", "segment": {"user_ids": ["u00001"]}, "channels": {"inapp": 1}, "template": {"body": "x"}, "schedule": {"delay_seconds": 600}}"#)
        #expect(later.status == 202)
        #expect(try await eventually(timeout: .seconds(20)) { try await api.call("GET", "/v1/campaigns/api-2").status == 200 })
        let cancelled = try await api.call("POST", "/v1/campaigns/api-2/cancel")
        #expect(cancelled.status == 200 && cancelled.json["state"] as? String == "cancelled", "\(cancelled.body)")
        let page1 = try await api.call("GET", "/v1/campaigns?limit=1")
        #expect(page1.items.map { $0["id"] as? String } == ["api-2"])
        let next = try #require(page1.json["next"] as? String)
        let page2 = try await api.call("GET", "/v1/campaigns?limit=1&after=\(next)")
        #expect(page2.items.map { $0["id"] as? String } == ["api-1"])
        #expect(try await api.call("GET", "/v1/campaigns?state=done").items.map { $0["id"] as? String } == ["api-1"])
        #expect(try await api.call("GET", "/v1/campaigns?state=bogus").errorField == "state")
        // A recurring series through the API: a scheduled row with its next run, paused and cancelled like any campaign.
        let series = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "weekly", "segment": {"id": "all"}, "channels": {"inapp": 1}, "template": {"body": "x"}, "schedule": {"cron": "0 9 * * 1", "timezone": "Asia/Shanghai"}}"#)
        #expect(series.status == 202, "\(series.body)")
        #expect(try await eventually(timeout: .seconds(20)) { try await api.call("GET", "/v1/campaigns/weekly").json["recurring"] as? Bool == true })
        let weekly = try await api.call("GET", "/v1/campaigns/weekly").json
        #expect(weekly["state"] as? String == "scheduled" && (weekly["scheduled_at"] as? String)?.hasSuffix("T01:00:00Z") == true, "\(weekly)")
        #expect(try await api.call("POST", "/v1/campaigns/weekly/pause").json["state"] as? String == "paused")
        #expect(try await api.call("POST", "/v1/campaigns/weekly/cancel").json["state"] as? String == "cancelled")
        #expect(try await api.call("GET", "/v1/campaigns?parent=weekly").items.isEmpty, "no run fell due")
        let badCron = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "bad-cron", "segment": {"id": "all"}, "channels": {"inapp": 1}, "template": {"body": "x"}, "schedule": {"cron": "61 * * * *"}}"#)
        #expect(badCron.status == 400 && badCron.errorField == "schedule.cron", "\(badCron.body)")
        let audit = try await api.call("GET", "/v1/audit?target=api-1")
        #expect(audit.items.map { $0["route"] as? String }.contains("/v1/campaigns/{id}/pause"), "\(audit.body)")
    }

    @Test("a user listed twice in user_ids is one user: one row, one message, and progress counts it once")
    func duplicateUserIDs() async throws {
        let api = try await APIHarness.start(users: 10, recordRequests: true)
        defer { api.stop() }
        let created = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "dups", "segment": {"user_ids": ["u00001", "u00002", "u00001", "u00001"]}, "channels": {"sms": 1}, "template": {"body": "x"}}"#)
        #expect(created.status == 202)
        #expect(try await waitForCampaign(api.pg, "dups", timeout: .seconds(30)))
        #expect(try await api.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'dups'").first?.int(0) == 2)
        #expect(api.provider.requests.flatMap(\.messageIDs).count == 2)
        let progress = try await api.call("GET", "/v1/campaigns/dups").json["progress"] as? [String: Any]
        #expect(progress?["total"] as? Int == 2 && progress?["done"] as? Int == 2, "\(String(describing: progress))")
    }

    @Test("segment preview: counts and samples, rule values with SQL are bound (never run), bad rules name the problem, a slow count times out")
    func segmentPreview() async throws {
        let api = try await APIHarness.start(users: 200)
        defer { api.stop() }
        let all = try await api.call("POST", "/v1/segments/preview", token: APIHarness.readToken, body: #"{"segment": {"id": "all"}}"#)
        #expect(all.status == 200 && all.json["count"] as? Int == 200 && (all.json["sample"] as? [String])?.count == 20, "\(all.body)")
        let rule = try await api.call("POST", "/v1/segments/preview", body: #"{"segment": {"rule": {"attr": "city", "op": "eq", "value": "C1"}}}"#)
        #expect(rule.json["count"] as? Int == 50, "\(rule.body)")
        let injection = try await api.call("POST", "/v1/segments/preview",
                                           body: #"{"segment": {"rule": {"attr": "name", "op": "eq", "value": "x'; DROP TABLE reach.recipients; --"}}}"#)
        #expect(injection.status == 200 && injection.json["count"] as? Int == 0, "\(injection.body)")
        #expect(try await api.pg.query("SELECT count(*) FROM reach.recipients").first?.int(0) == 200)
        let badOp = try await api.call("POST", "/v1/segments/preview", body: #"{"segment": {"rule": {"attr": "city", "op": "like", "value": "C%"}}}"#)
        #expect(badOp.status == 400 && badOp.body.contains("like"), "\(badOp.body)")
        // An attr that is not a column is an attrs key, bound as a parameter like a value.
        let oddAttr = try await api.call("POST", "/v1/segments/preview", body: #"{"segment": {"rule": {"attr": "city; DROP TABLE reach.recipients", "op": "eq", "value": 1}}}"#)
        #expect(oddAttr.status == 200 && oddAttr.json["count"] as? Int == 0, "\(oddAttr.body)")
        let unknown = try await api.call("POST", "/v1/segments/preview", body: #"{"segment": {"id": "nope"}}"#)
        #expect(unknown.status == 400 && unknown.body.contains("nope"))
        #expect(try await api.pg.query("SELECT count(*) FROM reach.deliveries").first?.int(0) == 0, "a preview sends nothing")

        // A count that takes longer than http.preview_timeout_ms is stopped by PostgreSQL.
        let slow = try await APIHarness.start(users: 10) { $0.http.previewTimeoutMs = 1 }
        defer { slow.stop() }
        try await slow.pg.query("""
            INSERT INTO reach.recipients (user_id, attrs) SELECT 'x' || g, jsonb_build_object('n', g) FROM generate_series(1, 300000) g
            """)
        let timedOut = try await slow.call("POST", "/v1/segments/preview", body: #"{"segment": {"rule": {"attr": "n", "op": "gt", "value": 299999}}}"#)
        #expect(timedOut.status == 503 && timedOut.errorCode == "timeout", "\(timedOut.status) \(timedOut.body)")
        #expect(try await slow.call("GET", "/v1/campaigns").status == 200, "the connection went back to the pool")
    }

    @Test("triggers: created through the API (SQL-looking text stored verbatim) fires on an event; PUT, GET, DELETE")
    func triggers() async throws {
        let api = try await APIHarness.start(users: 20, recordRequests: true)
        defer { api.stop() }
        let sqlish = "order.paid'); DROP TABLE reach.triggers; --"
        let body = #"{"id": "paid", "event": "\#(sqlish)", "channels": {"sms": 1}, "template": {"body": "order {{properties.order_no}}"}}"#
        let created = try await api.call("POST", "/v1/triggers", body: body)
        #expect(created.status == 201 && created.json["event"] as? String == sqlish, "\(created.body)")
        #expect(try await api.call("POST", "/v1/triggers", body: body).status == 409)
        #expect(try await api.pg.query("SELECT event FROM reach.triggers WHERE id = 'paid'").first?[0] == sqlish)
        try await publish(api.kafka, #"{"event_id": "e1", "event": "\#(sqlish.replacingOccurrences(of: "\"", with: "\\\""))", "user_id": "u00001", "properties": {"order_no": "A-77"}}"#,
                          key: "u00001", topic: "reach.events")
        #expect(try await eventually(timeout: .seconds(20)) {
            try await api.pg.query("SELECT status FROM reach.deliveries WHERE campaign_id = 't:paid:e1'").first?[0] == "sent"
        })
        #expect(api.provider.requests.contains { $0.messageIDs.count == 1 && $0.path == "/sms" })

        let put = try await api.call("PUT", "/v1/triggers/paid", body: #"{"event": "order.paid", "channels": {"inapp": 1}, "template": {"body": "v2"}, "enabled": false}"#)
        #expect(put.status == 200 && put.json["enabled"] as? Bool == false, "\(put.body)")
        let shown = try await api.call("GET", "/v1/triggers/paid", token: APIHarness.readToken)
        #expect(shown.json["event"] as? String == "order.paid" && (shown.json["template"] as? [String: Any])?["body"] as? String == "v2")
        #expect(try await api.call("PUT", "/v1/triggers/other", body: #"{"id": "paid", "event": "e", "channels": {"sms": 1}, "template": {"body": "x"}}"#).errorField == "id")
        let made = try await api.call("PUT", "/v1/triggers/second", body: #"{"event": "e", "channels": {"sms": 1}, "template": {"body": "x"}}"#)
        #expect(made.status == 201)
        let list = try await api.call("GET", "/v1/triggers?limit=1")
        #expect(list.items.map { $0["id"] as? String } == ["paid"] && list.json["next"] as? String == "paid")
        #expect(try await api.call("GET", "/v1/triggers?after=paid").items.map { $0["id"] as? String } == ["second"])
        #expect(try await api.call("DELETE", "/v1/triggers/paid").status == 200)
        #expect(try await api.call("DELETE", "/v1/triggers/paid").status == 404)
        #expect(try await api.call("GET", "/v1/triggers/paid").status == 404)
    }

    @Test("dead letters listed and replayed through the API; an inbox message listed and marked read (idempotent)")
    func deadLettersAndInbox() async throws {
        // The provider rejects every request (a permanent 400) until told otherwise.
        let failing = Mutex(true)
        let provider = DevProvider(behaviour: { _ in failing.withLock { $0 } ? (status: 400, retryAfter: nil) : nil })
        let api = try await APIHarness.start(users: 20, provider: provider)
        defer { api.stop() }
        let created = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "dl", "segment": {"user_ids": ["u00001", "u00002", "u00003", "u00004"]}, "channels": {"sms": 1}, "template": {"body": "x"}}"#)
        #expect(created.status == 202)
        #expect(try await waitForCampaign(api.pg, "dl", timeout: .seconds(30)))
        let letters = try await api.call("GET", "/v1/dead-letters?campaign=dl&source=delivery", token: APIHarness.readToken)
        #expect(letters.items.count == 4, "\(letters.body)")
        #expect(letters.items.allSatisfy { $0["channel"] as? String == "sms" && $0["reason"] as? String != nil })
        let page = try await api.call("GET", "/v1/dead-letters?campaign=dl&limit=3")
        #expect(page.items.count == 3)
        let cursor = try #require(page.json["next"] as? String)
        let rest = try await api.call("GET", "/v1/dead-letters?campaign=dl&limit=3&after=\(cursor)")
        #expect(rest.items.count == 1)
        #expect(try await api.call("POST", "/v1/dead-letters/replay", body: "{}").status == 400, "an empty selection replays nothing")
        failing.withLock { $0 = false }
        let first = try #require(letters.items.first?["id"] as? Int)
        let one = try await api.call("POST", "/v1/dead-letters/replay", body: #"{"ids": [\#(first)]}"#)
        #expect(one.json["replayed"] as? Int == 1, "\(one.body)")
        let others = try await api.call("POST", "/v1/dead-letters/replay", body: #"{"campaign": "dl"}"#)
        #expect(others.json["replayed"] as? Int == 3, "\(others.body)")
        #expect(try await eventually(timeout: .seconds(30)) {
            try await api.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'dl' AND status = 'sent'").first?.int(0) == 4
        })

        let inapp = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "box", "segment": {"user_ids": ["u00005"]}, "channels": {"inapp": 1}, "template": {"title": "T", "body": "B"}}"#)
        #expect(inapp.status == 202)
        #expect(try await waitForCampaign(api.pg, "box", timeout: .seconds(30)))
        let inbox = try await api.call("GET", "/v1/inbox/u00005", token: APIHarness.readToken)
        #expect(inbox.items.count == 1 && inbox.json["unread"] as? Int == 1, "\(inbox.body)")
        let id = try #require(inbox.items.first?["id"] as? Int)
        let read = try await api.call("POST", "/v1/inbox/u00005/\(id)/read")
        let readAt = try #require(read.json["read_at"] as? String)
        let again = try await api.call("POST", "/v1/inbox/u00005/\(id)/read")
        #expect(again.status == 200 && again.json["read_at"] as? String == readAt, "read_at keeps the first read")
        #expect(try await api.call("GET", "/v1/inbox/u00005?unread=true").items.isEmpty)
        #expect(try await api.call("GET", "/v1/inbox/u00005").json["unread"] as? Int == 0)
        #expect(try await api.call("POST", "/v1/inbox/u00006/\(id)/read").status == 404, "another user's message")
    }

    @Test("channels: pause and resume through the API are the cluster-wide switch in Redis; a paused channel defers, a resumed one delivers, nothing lost; unknown channel 404")
    func channelSwitch() async throws {
        let api = try await APIHarness.start(users: 40, recordRequests: true)
        defer { api.stop() }
        let paused = try await api.call("POST", "/v1/channels/sms/pause")
        #expect(paused.status == 200 && paused.json["changed"] as? Bool == true, "\(paused.body)")
        #expect(try await api.call("POST", "/v1/channels/sms/pause").json["changed"] as? Bool == false)
        let list = try await api.call("GET", "/v1/channels", token: APIHarness.readToken)
        let sms = list.items.first { $0["name"] as? String == "sms" }
        #expect(sms?["paused"] as? Bool == true && sms?["paused_since"] as? String != nil, "\(list.body)")
        #expect(list.items.count == 4)
        let redis = try RedisClient(url: try TestEnvironment.redisURL(), poolSize: 1)
        #expect(try await redis.send("HEXISTS", api.configuration.redis.prefix + "channels:paused", "sms").int == 1)
        // A campaign while sms is paused: nothing reaches the provider, the users wait scheduled.
        #expect(try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "paused-sms", "segment": {"user_ids": ["u00001", "u00002", "u00003"]}, "channels": {"sms": 1}, "template": {"body": "x"}}"#).status == 202)
        #expect(try await eventually(timeout: .seconds(20)) {
            try await api.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'paused-sms' AND status = 'scheduled'").first?.int(0) == 3
        })
        try await Task.sleep(for: .seconds(1))
        #expect(api.provider.requests.isEmpty, "no request while paused")
        #expect(try await api.call("GET", "/metrics", token: nil).body.contains(#"reach_channel_paused{channel="sms"} 1"#))
        #expect(try await api.call("POST", "/v1/channels/sms/resume").json["changed"] as? Bool == true)
        #expect(try await redis.send("HEXISTS", api.configuration.redis.prefix + "channels:paused", "sms").int == 0)
        #expect(try await waitForCampaign(api.pg, "paused-sms", timeout: .seconds(30)))
        #expect(try await api.pg.query("SELECT count(*) FROM reach.deliveries WHERE campaign_id = 'paused-sms' AND status = 'sent'").first?.int(0) == 3)
        let ids = api.provider.requests.flatMap(\.messageIDs)
        #expect(ids.count == 3 && Set(ids).count == 3, "each message once: \(ids)")
        #expect(try await api.call("POST", "/v1/channels/fax/pause").status == 404)
    }

    @Test("per-token rate limit: 429 with Retry-After past the burst, other tokens unaffected")
    func rateLimit() async throws {
        let api = try await APIHarness.start { c in
            c.http.tokenRatePerSecond = 1
            c.http.tokenBurst = 3
        }
        defer { api.stop() }
        // Ten at once: the burst (3) goes through, plus what one token a second refills meanwhile.
        let started = ContinuousClock.now
        let replies = try await withThrowingTaskGroup(of: APIReplyData.self) { group in
            for _ in 0..<10 { group.addTask { try await api.call("GET", "/v1/channels") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let statuses = replies.map(\.status)
        let refilled = Int((ContinuousClock.now - started).seconds.rounded(.up))
        #expect(statuses.filter { $0 == 200 }.count >= 3 && statuses.filter { $0 == 200 }.count <= 3 + refilled, "\(statuses)")
        #expect(statuses.contains(429) && statuses.allSatisfy { $0 == 200 || $0 == 429 }, "\(statuses)")
        let limited = try #require(replies.first { $0.status == 429 })
        #expect(limited.errorCode == "rate_limited" && Int(limited.headers["retry-after"] ?? "") ?? 0 >= 1, "\(limited.headers)")
        #expect(try await api.call("GET", "/v1/channels", token: APIHarness.readToken).status == 200)
    }

    @Test("audit rows mask phone numbers, e-mails and secrets in bodies; GET /v1/audit needs write scope")
    func auditMasking() async throws {
        let api = try await APIHarness.start()
        defer { api.stop() }
        let body = #"{"campaign_id": "masked", "segment": {"user_ids": ["u00001"]}, "channels": {"sms": 1}, "template": {"body": "call 13800138000 or mail alice@example.com"}, "data": {"password": "hunter2", "api_key": "k-123"}}"#
        #expect(try await api.call("POST", "/v1/campaigns", body: body).status == 202)
        #expect(try await api.call("GET", "/v1/audit", token: APIHarness.readToken).status == 403)
        let audit = try await api.call("GET", "/v1/audit?token=ops")
        let row = try #require(audit.items.first { $0["target"] as? String == "masked" })
        let stored = try #require(row["body"] as? String)
        for secret in ["13800138000", "alice@example.com", "hunter2", "k-123"] { #expect(!stored.contains(secret), "\(stored)") }
        #expect(stored.contains("138****8000") && stored.contains("a***@example.com"), "\(stored)")
        #expect(row["status"] as? Int == 202 && row["method"] as? String == "POST" && row["client"] as? String == "127.0.0.1")
    }
}

