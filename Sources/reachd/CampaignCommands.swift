import ArgumentParser
import Foundation
import Logging
import ReachCore
import ReachDevTools
import ReachKafka
import ReachPostgres
import ReachService
import ServiceLifecycle

struct CampaignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign", abstract: "Create, list, control and follow campaigns (through the HTTP API).",
        subcommands: [Create.self, List.self, Show.self, Pause.self, Resume.self, Cancel.self, Watch.self, Publish.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a task (SPEC §3.1) and publish it straight on the tasks topic (needs the broker, not the API).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "JSON file with the task, or - for standard input.") var file: String

        func run() async throws {
            let c = try options.load()
            let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile()
                                   : try Data(contentsOf: URL(fileURLWithPath: file))
            let task: TaskMessage
            do {
                task = try TaskParser(channels: Set(c.channels.keys)).parse(Array(data))
            } catch {
                FileHandle.standardError.write(Data("reachd: the task is invalid: \(error)\n".utf8))
                throw ExitCode(1)
            }
            guard !c.kafka.isEmbedded else {
                FileHandle.standardError.write(Data("reachd: set kafka.brokers (REACH_KAFKA_BROKERS) to a running broker\n".utf8))
                throw ExitCode(1)
            }
            let producer = try KafkaProducer(configuration: .init(bootstrapServers: c.kafka.brokers, properties: c.kafka.properties))
            let report = try await producer.send(topic: c.kafka.topics.tasks, key: Array(task.campaignID.utf8), value: Array(data))
            print("published \(task.campaignID) to \(report.topic)[\(report.partition)] at offset \(report.offset)")
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a campaign's progress (GET /v1/campaigns/{id}) until it ends, then a summary.")
        @OptionGroup var api: APIOptions
        @Argument(help: "Campaign id.") var id: String
        @Option(help: "Give up after this many seconds.") var timeout: Int = 600

        func run() async throws {
            try await operatorCommand {
                let client = try api.client()
                let start = ContinuousClock.now
                var lastLine = ""
                var campaign = JSONValue.null
                while ContinuousClock.now - start < .seconds(timeout) {
                    do {
                        campaign = try await client.call(.GET, "/v1/campaigns/" + APIClient.pathPart(id))
                    } catch let error as CLIError where error.description.contains("HTTP 404") {
                        // Published but not consumed yet.
                        try await Task.sleep(for: .milliseconds(500))
                        continue
                    }
                    let state = campaign["state"]?.string ?? "?"
                    if campaign["recurring"]?.bool == true {
                        // A series never ends by itself: its runs are the campaigns to follow.
                        print("campaign \(id) is a recurring series (\(state), next run \(Output.cell(campaign["scheduled_at"]))); follow a run: reachd campaign list --parent \(id)")
                        return
                    }
                    let progress = campaign["progress"]
                    let statuses = campaign["statuses"]
                    func n(_ v: JSONValue?) -> Int { v?.integer ?? 0 }
                    let elapsed = (ContinuousClock.now - start).seconds
                    let total = progress?["total"]?.integer.map(String.init) ?? "?"
                    let line = String(format: "%6.1fs  %-9@ done %7d/%@  sent %7d  skipped %6d  dead %5d  waiting %6d  %8.0f/s",
                                      elapsed, state as NSString, n(progress?["done"]), total as NSString, n(statuses?["sent"]),
                                      n(statuses?["skipped"]), n(statuses?["dead"]), n(statuses?["scheduled"]),
                                      campaign["throughput_per_second"]?.number ?? 0)
                    if line != lastLine { print(line); fflush(nil); lastLine = line }
                    if ["done", "cancelled", "failed"].contains(state) { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                guard campaign != .null else { throw CLIError("campaign \(id) did not appear within \(timeout) s") }
                let state = campaign["state"]?.string ?? "?"
                // Once more after the end, so the summary counts every row.
                campaign = try await client.call(.GET, "/v1/campaigns/" + APIClient.pathPart(id))
                if api.json { Output.json(campaign); if state != "done" { throw ExitCode(1) }; return }
                print("\ncampaign \(id): \(state)\(campaign["error"]?.string.map { " (\($0))" } ?? "")")
                print("  by channel and status:")
                for (channel, counts) in (campaign["channels"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) {
                    for (status, count) in (counts.object ?? [:]).sorted(by: { $0.key < $1.key }) {
                        print(String(format: "    %-8@ %-9@ %8d", channel as NSString, status as NSString, count.integer ?? 0))
                    }
                }
                for (reason, count) in (campaign["reasons"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) {
                    print(String(format: "    %-18@ %8d", reason as NSString, count.integer ?? 0))
                }
                if let rate = campaign["throughput_per_second"]?.number, let done = campaign["progress"]?["done"]?.integer {
                    print(String(format: "  %d recipients done, %.0f per second from start to finish", done, rate))
                }
                if state != "done" { throw ExitCode(1) }
            }
        }
    }
}

struct DevProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-provider",
        abstract: "Run a local provider that accepts SPEC §6 batches on any path (development, demo, benchmarks).",
        discussion: "GET /stats returns what it received so far as JSON.")
    @Option(help: "Address to listen on (0.0.0.0 in a container, so that other containers reach it).") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on.") var port: Int = 9090
    @Option(help: "Delay before answering each request, in milliseconds.") var delayMs: Int = 0
    @Flag(help: "Read each message's title as its publish time (µs since the epoch) and report latency in /stats (trigger benchmark).")
    var latencyFromTitle = false

    func run() async throws {
        ReachLogHandler.bootstrap(level: .info, format: .json)
        let logger = Logger(label: "reach.dev-provider")
        // Lean: it reads only what its /stats reports (ids, channels, titles for latency), so its
        // cost does not hide reachd's own in the benchmark.
        let provider = DevProvider(delay: .milliseconds(delayMs), latencyFromTitle: latencyFromTitle, keepMessages: false)
        let app = provider.makeApplication(host: host, port: port, logger: logger) { bound in
            print("dev provider on http://\(host):\(bound)")
            fflush(nil)
        }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
