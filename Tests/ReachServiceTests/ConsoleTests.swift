import Foundation
import ReachDevTools
import ReachService
import Synchronization
import Testing
import TestSupport

@Suite("the web console at /console: embedded, strict CSP, driven in headless Chromium")
struct ConsoleTests {
    static let root = TestEnvironment.packageRoot.appendingPathComponent("console")

    @Test("the binary serves exactly console/ (scripts/console-embed), with no inline script, style or HTML insertion")
    func embeddedAndStatic() throws {
        for (file, embedded) in [("index.html", ConsoleAssets.indexHTML), ("console.css", ConsoleAssets.stylesheet),
                                 ("console.js", ConsoleAssets.script)] {
            let text = try String(contentsOf: Self.root.appendingPathComponent(file), encoding: .utf8)
            #expect(text == embedded + "\n", "console/\(file) differs from the compiled-in copy: run scripts/console-embed")
        }
        let html = ConsoleAssets.indexHTML
        // Every <script> has a src and no body; no on…= handler or style= attribute anywhere.
        #expect(html.matches(of: /<script\b[^>]*>/).allSatisfy { $0.output.contains("src=\"/console/") })
        #expect(!html.contains(/<script[^>]*>[^<]+<\/script>/))
        #expect(!html.contains(/\son[a-z]+\s*=/), "inline event handler")
        #expect(!html.contains(/\sstyle\s*=/), "inline style")
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage.setItem"] {
            #expect(!ConsoleAssets.script.contains(sink), "console.js uses \(sink)")
        }
        #expect(!ConsoleAssets.script.contains(/[?&]token=/), "the token never goes into a URL")
    }

    @Test("GET /console, its script and stylesheet: the right types and a Content-Security-Policy with no inline script; unknown files 404")
    func headers() async throws {
        let api = try await APIHarness.start(users: 1)
        defer { api.stop() }
        for (path, type) in [("/console", "text/html"), ("/console/", "text/html"), ("/console/console.js", "text/javascript"),
                             ("/console/console.css", "text/css")] {
            let reply = try await api.call("GET", path, token: nil)
            #expect(reply.status == 200, "\(path)")
            #expect(reply.headers["content-type"]?.hasPrefix(type) == true, "\(path): \(reply.headers)")
            let csp = reply.headers["content-security-policy"] ?? ""
            #expect(csp == ConsoleAssets.contentSecurityPolicy, "\(path): \(csp)")
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"))
            #expect(reply.headers["x-content-type-options"] == "nosniff")
            #expect(reply.headers["referrer-policy"] == "no-referrer")
        }
        let missing = try await api.call("GET", "/console/other.js", token: nil)
        #expect(missing.status == 404 && missing.errorCode == "not_found")
        let channels = try await api.call("GET", "/v1/channels", token: APIHarness.readToken)
        #expect(channels.items.allSatisfy { $0["breaker"] as? String == "closed" }, "\(channels.body)")
    }

    @Test("in Chromium: sign in, start a campaign from the form and watch it reach 100 %, pause and resume it, a markup name renders as text, a trigger rule, a dead letter replayed, read token sees no write control")
    func browser() async throws {
        // The provider refuses every request (a permanent 400) until the dead letter exists.
        let failing = Mutex(true)
        let provider = DevProvider(behaviour: { _ in failing.withLock { $0 } ? (status: 400, retryAfter: nil) : nil })
        let users = 300
        let api = try await APIHarness.start(users: users, provider: provider) { c in
            // Slow enough to pause part way: the ~230 users who can be sent to take about 12 s at 20/s.
            c.channels["sms"]?.ratePerSecond = 20
            c.channels["sms"]?.batchSize = 10
            // A page's rows are written when the page is done: small pages let the progress bar move.
            c.pipeline.pageSize = 20
        }
        defer { api.stop() }
        let dead = try await api.call("POST", "/v1/campaigns", body: #"{"campaign_id": "dl", "segment": {"user_ids": ["u00001"]}, "channels": {"sms": 1}, "template": {"body": "again"}}"#)
        #expect(dead.status == 202)
        #expect(try await waitForCampaign(api.pg, "dl", timeout: .seconds(30)))
        #expect(try await api.pg.query("SELECT status FROM reach.deliveries WHERE campaign_id = 'dl'").first?[0] == "dead")
        failing.withLock { $0 = false }

        let shots = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("console-shots"))
        let script = TestEnvironment.packageRoot.appendingPathComponent("scripts/console_test.py").path
        let url = "http://127.0.0.1:\(api.port)"
        let (code, output) = try await blocking { () throws -> (Int32, String) in
            let process = try spawn("python3", [script, "--url", url, "--shots", shots.path, "--users", "\(users)"],
                                    environment: ["CONSOLE_WRITE_TOKEN": APIHarness.writeToken, "CONSOLE_READ_TOKEN": APIHarness.readToken])
            defer { unlink(process.outputPath) }
            let code = process.waitBlocking()
            return (code, process.output)
        }
        #expect(code == 0 && output.contains("console_test: all steps passed"), "scripts/console_test.py exited \(code):\n\(output)")
        let pictures = (try? FileManager.default.contentsOfDirectory(atPath: shots.path))?.filter { $0.hasSuffix(".png") } ?? []
        #expect(pictures.count >= 10, "screenshots in \(shots.path): \(pictures.sorted())")

        // What the browser did, as PostgreSQL, the provider and the audit log saw it.
        let rows = try await api.pg.query(
            "SELECT count(*), count(DISTINCT user_id), count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status NOT IN ('sent', 'skipped')) FROM reach.deliveries WHERE campaign_id = 'console-e2e'")
        let counts = try #require(rows.first)
        #expect(counts.int(0) == users && counts.int(1) == users && counts.int(3) == 0, "one terminal row per user")
        let sent = counts.int(2) ?? 0
        #expect(sent > 0)
        #expect(try await api.pg.query("SELECT spec->>'name', state FROM reach.campaigns WHERE id = 'console-e2e'").first.map { [$0[0], $0[1]] }
                == ["<img src=x onerror=alert(1)>", "done"])
        #expect(try await eventually(timeout: .seconds(30)) {
            try await api.pg.query("SELECT status FROM reach.deliveries WHERE campaign_id = 'dl'").first?[0] == "sent"
        }, "the replayed dead letter was sent")
        // Every sent row reached the provider once (the dead letter's one, too), and nothing else did.
        let stats = provider.stats
        #expect(stats.duplicates == 0 && stats.distinct == sent + 1, "\(stats), \(sent) sent rows")
        let audit = try await api.pg.query("SELECT route FROM reach.audit WHERE token_name = 'ops' AND status < 300 ORDER BY id").map { $0[0] ?? "" }
        for route in ["/v1/campaigns", "/v1/campaigns/{id}/pause", "/v1/campaigns/{id}/resume", "/v1/triggers/{id}", "/v1/dead-letters/replay"] {
            #expect(audit.contains(route), "\(route) not in the audit log: \(audit)")
        }
        #expect(try await api.pg.query("SELECT count(*) FROM reach.audit WHERE token_name = 'viewer' AND status = 403").first?.int(0) ?? 0 >= 1)
        #expect(try await api.pg.query("SELECT enabled FROM reach.triggers WHERE id = 'console-rule'").first?[0] == "f")
    }
}
