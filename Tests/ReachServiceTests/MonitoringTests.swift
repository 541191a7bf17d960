import Foundation
import ReachDevTools
@testable import ReachService
import Testing
import TestSupport

/// The monitoring files under `deploy/`, and the PromQL they hold.
enum Monitoring {
    static var deploy: URL { TestEnvironment.packageRoot.appendingPathComponent("deploy") }
    static var alerts: URL { deploy.appendingPathComponent("prometheus/alerts.yaml") }
    static var alertTests: URL { deploy.appendingPathComponent("prometheus/alerts.test.yaml") }
    static var dashboard: URL { deploy.appendingPathComponent("grafana/reachd-dashboard.json") }

    static func dashboardJSON() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: dashboard))
        return try #require(object as? [String: Any], "the dashboard is not a JSON object")
    }

    /// Every panel, rows' collapsed panels included.
    static func panels(_ dashboard: [String: Any]) -> [[String: Any]] {
        func walk(_ list: [[String: Any]]) -> [[String: Any]] {
            list.flatMap { [$0] + walk($0["panels"] as? [[String: Any]] ?? []) }
        }
        return walk(dashboard["panels"] as? [[String: Any]] ?? [])
    }

    static func variables(_ dashboard: [String: Any]) -> [String: [String: Any]] {
        let list = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        return Dictionary(list.compactMap { v in (v["name"] as? String).map { ($0, v) } }, uniquingKeysWith: { a, _ in a })
    }

    /// A query variable's query: a string, or the editor's `{"query": …}` object.
    static func variableQuery(_ variable: [String: Any]) -> String? {
        (variable["query"] as? String) ?? (variable["query"] as? [String: Any])?["query"] as? String
    }

    /// Every target's `expr`, as written (with Grafana's variables), by panel title.
    static func dashboardExpressions(_ dashboard: [String: Any]) -> [(panel: String, expr: String)] {
        panels(dashboard).flatMap { panel -> [(panel: String, expr: String)] in
            let title = panel["title"] as? String ?? "?"
            return (panel["targets"] as? [[String: Any]] ?? []).compactMap { target in
                (target["expr"] as? String).map { (panel: title, expr: $0) }
            }
        }
    }

    /// Grafana's variables replaced by values PromQL accepts (longest names first: `$__rate_interval` before `$__interval`).
    static func substitute(_ expr: String) -> String {
        [("${datasource}", "prometheus"), ("${channel}", "sms"), ("$channel", "sms"),
         ("$__rate_interval", "5m"), ("$__interval", "1m")]
            .reduce(expr) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
    }

    /// The `expr` of every rule in a rules file: inline, quoted or a block scalar (`expr: |`).
    static func ruleExpressions(_ yaml: String) -> [String] {
        let lines = yaml.components(separatedBy: "\n")
        func indent(_ line: String) -> Int { line.prefix { $0 == " " }.count }
        var result: [String] = []
        var i = 0
        while i < lines.count {
            let line = lines[i]
            i += 1
            guard let key = line.range(of: "expr:"), line[..<key.lowerBound].allSatisfy({ $0 == " " || $0 == "-" }) else { continue }
            let rest = line[key.upperBound...].trimmingCharacters(in: .whitespaces)
            if rest.hasPrefix("|") || rest.hasPrefix(">") {
                var body: [String] = []
                while i < lines.count, lines[i].trimmingCharacters(in: .whitespaces).isEmpty || indent(lines[i]) > indent(line) {
                    body.append(lines[i])
                    i += 1
                }
                result.append(body.joined(separator: "\n"))
            } else if let quote = rest.first, quote == "\"" || quote == "'", rest.count >= 2, rest.last == quote {
                result.append(String(rest.dropFirst().dropLast()))
            } else {
                result.append(rest)
            }
        }
        return result
    }

    /// Aggregations, keywords and other words PromQL uses that are not metric names
    /// (functions are recognised by the `(` that follows them). `up` is Prometheus's own.
    static let notMetrics: Set<String> = [
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
        "inf", "nan", "Inf", "NaN", "up",
    ]
    static let groupings: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right"]

    /// The metric names an expression selects: identifiers outside strings, label
    /// matchers (`{…}`), ranges (`[…]`) and grouping lists (`by (…)`), not followed by `(`.
    static func metricNames(in expr: String) -> Set<String> {
        let chars = Array(expr)
        var names: Set<String> = []
        var i = 0
        func isStart(_ c: Character) -> Bool { c.isLetter || c == "_" || c == ":" }
        func isPart(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == ":" }
        /// Moves past the next `close`, skipping escaped characters and the strings on the way.
        func skip(to close: Character) {
            let inString = close == "\"" || close == "'" || close == "`"
            while i < chars.count {
                let c = chars[i]
                i += 1
                if c == close { return }
                if c == "\\" { i += 1 } else if !inString && (c == "\"" || c == "'") { skip(to: c) }
            }
        }
        func nextNonSpace(from j: Int) -> Int {
            var j = j
            while j < chars.count, chars[j].isWhitespace { j += 1 }
            return j
        }
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "\"", "'", "`": i += 1; skip(to: c)
            case "{": i += 1; skip(to: "}")
            case "[": i += 1; skip(to: "]")
            case _ where c.isNumber || c == ".":
                while i < chars.count, isPart(chars[i]) || chars[i] == "." { i += 1 }  // 0.99, 5m, 1e3
            case _ where isStart(c):
                let start = i
                while i < chars.count, isPart(chars[i]) { i += 1 }
                let word = String(chars[start..<i])
                let next = nextNonSpace(from: i)
                let call = next < chars.count && chars[next] == "("
                if groupings.contains(word) && call {
                    i = next + 1
                    skip(to: ")")
                } else if !call && !notMetrics.contains(word) {
                    names.insert(word)
                }
            default: i += 1
            }
        }
        return names
    }

    /// `# TYPE name type` lines of an exposition.
    static func families(_ exposition: String) -> [String: String] {
        var types: [String: String] = [:]
        for line in exposition.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            if parts.count >= 4 { types[String(parts[2])] = String(parts[3]) }
        }
        return types
    }

    /// Whether `name` is a family of the exposition, or a histogram's `_bucket`, `_sum` or `_count`.
    static func isExported(_ name: String, _ types: [String: String]) -> Bool {
        if types[name] != nil { return true }
        return ["_bucket", "_sum", "_count"].contains { suffix in
            name.hasSuffix(suffix) && types[String(name.dropLast(suffix.count))] == "histogram"
        }
    }

    /// The value of an unlabelled sample line `name value`.
    static func value(_ name: String, in exposition: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    static func temporaryFile(_ prefix: String, _ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique(prefix)).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite("monitoring: alert rules and their unit tests, the Grafana dashboard, the metrics they name, process_*")
struct MonitoringTests {
    @Test("deploy/prometheus/alerts.yaml passes promtool check rules, and promtool test rules passes alerts.test.yaml")
    func alertRules() async throws {
        // run throws when the exit status is not 0.
        _ = try await blocking { try run("promtool", ["check", "rules", Monitoring.alerts.path]) }
        _ = try await blocking { try run("promtool", ["test", "rules", Monitoring.alertTests.path]) }
    }

    @Test("every alert has severity, summary and description, and a unit test")
    func everyAlertIsComplete() throws {
        let rules = try String(contentsOf: Monitoring.alerts, encoding: .utf8)
        let blocks = rules.components(separatedBy: "- alert: ").dropFirst()
        #expect(blocks.count >= 9, "\(blocks.count) alerts")
        let tests = try String(contentsOf: Monitoring.alertTests, encoding: .utf8)
        for block in blocks {
            let name = String(block.prefix { !$0.isWhitespace })
            for key in ["severity:", "summary:", "description:"] {
                #expect(block.contains(key), "\(name) has no \(key)")
            }
            #expect(tests.contains("alertname: \(name)\n"), "\(name) has no test in alerts.test.yaml")
        }
    }

    @Test("the dashboard: datasource and channel variables, every panel on ${datasource}, every expr valid PromQL")
    func dashboard() async throws {
        let dashboard = try Monitoring.dashboardJSON()
        let variables = Monitoring.variables(dashboard)
        let datasource = try #require(variables["datasource"], "no datasource variable")
        #expect(datasource["type"] as? String == "datasource")
        #expect(datasource["query"] as? String == "prometheus")
        let channel = try #require(variables["channel"], "no channel variable")
        #expect(channel["type"] as? String == "query")
        #expect(channel["multi"] as? Bool == true)
        #expect(channel["includeAll"] as? Bool == true)
        #expect(Monitoring.variableQuery(channel) == "label_values(reach_messages_total, channel)")
        #expect((channel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}")

        let panels = Monitoring.panels(dashboard).filter { $0["type"] as? String != "row" }
        #expect(panels.count >= 12)
        for panel in panels {
            let title = panel["title"] as? String ?? "?"
            #expect(["timeseries", "stat"].contains(panel["type"] as? String), "\(title): type \(panel["type"] ?? "none")")
            #expect((panel["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(title) does not use ${datasource}")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(title) has no targets")
            for target in targets where target["datasource"] != nil {
                #expect((target["datasource"] as? [String: Any])?["uid"] as? String == "${datasource}", "\(title): a target does not use ${datasource}")
            }
        }

        let expressions = Monitoring.dashboardExpressions(dashboard)
        #expect(expressions.contains { $0.expr.contains("$channel") }, "no panel applies the channel variable")
        var rules = "groups:\n  - name: dashboard\n    rules:\n"
        for (i, (panel, expr)) in expressions.enumerated() {
            let promql = Monitoring.substitute(expr)
            #expect(!promql.contains("$"), "\(panel): a variable the test does not know: \(expr)")
            rules += "      - record: dashboard:expr_\(i)\n        expr: |\n"
            rules += promql.split(separator: "\n", omittingEmptySubsequences: false).map { "          " + $0 }.joined(separator: "\n") + "\n"
        }
        // run throws when promtool exits non-zero, with its output naming the bad expression.
        let rulesFile = try Monitoring.temporaryFile("dashboard-rules", rules)
        _ = try await blocking { try run("promtool", ["check", "rules", rulesFile]) }
    }

    @Test("the metric-name scanner finds selectors and skips functions, groupings, matchers and ranges")
    func metricNameScanner() {
        let expr = """
            histogram_quantile(0.99, sum by (kind, le) (rate(a_seconds_bucket{kind="event", x=~"b|c"}[5m]))) > 1
            and on (kind) max without (instance) (b_total offset 5m) / c:recorded or vector(0) unless up{job="reachd"} == bool 1e3
            """
        #expect(Monitoring.metricNames(in: expr) == ["a_seconds_bucket", "b_total", "c:recorded"])
        #expect(Monitoring.metricNames(in: "max(reach_delay_queue_depth)") == ["reach_delay_queue_depth"])
    }

    @Test("ProcessMetrics reads /proc/<pid>/stat, limits and btime; its text passes promtool check metrics")
    func processMetricsParsing() async throws {
        // The command name may hold spaces and parentheses: fields count from the last ")".
        let stat = "4242 (reach d) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 12345 1073741824 2560 "
            + "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        let sample = try #require(ProcessMetrics.parseStat(stat, ticksPerSecond: 100, pageSize: 4096, bootTime: 1_700_000_000))
        #expect(sample.cpuSeconds == 3)
        #expect(sample.residentBytes == 2560 * 4096)
        #expect(sample.virtualBytes == 1_073_741_824)
        #expect(abs(sample.startTimeSeconds - 1_700_000_123.45) < 1e-6)
        #expect(ProcessMetrics.parseStat("garbage", ticksPerSecond: 100, pageSize: 4096, bootTime: 0) == nil)
        #expect(ProcessMetrics.parseBootTime("cpu  1 2 3\nbtime 1796313416\nprocesses 9\n") == 1_796_313_416)
        let limits = """
            Limit                     Soft Limit           Hard Limit           Units
            Max processes             96362                96362                processes
            Max open files            1024                 4096                 files
            """
        #expect(ProcessMetrics.parseMaxOpenFiles(limits) == 1024)
        #expect(ProcessMetrics.parseMaxOpenFiles("Max open files            unlimited            unlimited            files") == nil)

        var full = sample
        full.openFDs = 12
        full.maxFDs = 1024
        let text = ProcessMetrics.render(full)
        #expect(text.contains("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.0\n"), "\(text)")
        #expect(text.contains("process_open_fds 12\n") && text.contains("process_max_fds 1024\n"))
        let file = try Monitoring.temporaryFile("process-metrics", text)
        _ = try await blocking { try run("sh", ["-c", "promtool check metrics < \(file)"]) }
        // Without a limit the family is left out, not written empty.
        #expect(!ProcessMetrics.render(sample).contains("process_max_fds"))

        let current = try #require(ProcessMetrics.current(), "/proc/self cannot be read")
        #expect(current.residentBytes > 1_000_000)
        #expect((current.openFDs ?? 0) > 0)
    }

    @Test("every metric the dashboard and the alerts name is on /metrics after a campaign; it passes promtool; process_* are plausible")
    func referencedMetricsAreExported() async throws {
        // What the files reference.
        var referenced: [String: Set<String>] = [:]
        let dashboard = try Monitoring.dashboardJSON()
        for (panel, expr) in Monitoring.dashboardExpressions(dashboard) {
            for name in Monitoring.metricNames(in: Monitoring.substitute(expr)) { referenced[name, default: []].insert("dashboard: \(panel)") }
        }
        for variable in Monitoring.variables(dashboard).values {
            guard let query = Monitoring.variableQuery(variable), query.hasPrefix("label_values(") else { continue }
            let metric = query.dropFirst("label_values(".count).prefix { $0 != "," && $0 != ")" }.trimmingCharacters(in: .whitespaces)
            referenced[metric, default: []].insert("dashboard variable \(variable["name"] ?? "?")")
        }
        for expr in Monitoring.ruleExpressions(try String(contentsOf: Monitoring.alerts, encoding: .utf8)) {
            for name in Monitoring.metricNames(in: expr) { referenced[name, default: []].insert("alerts.yaml") }
        }
        #expect(referenced.count >= 15, "\(referenced.keys.sorted())")

        // A daemon that has run a small campaign (histograms have samples), rejected one input and answered /readyz.
        let fixture = try await PipelineFixture.make(users: 20)
        defer { fixture.stop() }
        let (port, daemon) = try await startDaemon(fixture.configuration)
        defer { daemon.cancel() }
        try await publish(fixture.kafka, """
            {"kind": "campaign", "campaign_id": "monitoring-1", "segment": {"id": "all"},
             "channels": {"sms": 70, "push": 30}, "fallback": ["email", "inapp"], "template": {"body": "hi {{name}}"}}
            """, key: "monitoring-1")
        #expect(try await waitForCampaign(fixture.pg, "monitoring-1"), "campaign did not finish")
        try await publish(fixture.kafka, "not json", key: "monitoring-bad")
        _ = try await get("http://127.0.0.1:\(port)/readyz")
        var exposition = ""
        let complete = try await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
            exposition = try await get("http://127.0.0.1:\(port)/metrics").body
            return exposition.contains("reach_input_rejected_total{") && exposition.contains("reach_kafka_consumer_lag{")
                && exposition.contains("reach_end_to_end_seconds_bucket{")
        }
        #expect(complete, "the rejected input, the lag sample or the end-to-end histogram never showed: \(exposition)")

        let types = Monitoring.families(exposition)
        for (name, users) in referenced.sorted(by: { $0.key < $1.key }) {
            #expect(Monitoring.isExported(name, types), "\(name) (\(users.sorted().joined(separator: ", "))) is not exported")
        }

        // The exposition lints clean: promtool exits 0 (run throws otherwise) and reports nothing.
        let file = try Monitoring.temporaryFile("metrics", exposition)
        let lint = try await blocking { try run("sh", ["-c", "promtool check metrics < \(file)"]) }
        #expect(!lint.contains("problem") && !lint.contains("error"), "promtool: \(lint)")

        // process_* under the standard names, with plausible values.
        #expect(types["process_cpu_seconds_total"] == "counter")
        for gauge in ["process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                      "process_start_time_seconds"] {
            #expect(types[gauge] == "gauge", "\(gauge): \(types[gauge] ?? "missing")")
        }
        let cpu = try #require(Monitoring.value("process_cpu_seconds_total", in: exposition))
        #expect(cpu > 0)
        let rss = try #require(Monitoring.value("process_resident_memory_bytes", in: exposition))
        #expect(rss > 1_000_000)
        #expect((Monitoring.value("process_virtual_memory_bytes", in: exposition) ?? 0) >= rss)
        let fds = try #require(Monitoring.value("process_open_fds", in: exposition))
        #expect(fds > 0 && fds <= (Monitoring.value("process_max_fds", in: exposition) ?? 0))
        let start = try #require(Monitoring.value("process_start_time_seconds", in: exposition))
        let now = Date().timeIntervalSince1970
        #expect(start > now - 86_400 && start <= now + 5, "started at \(start), now \(now)")
    }
}
