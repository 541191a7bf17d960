import ArgumentParser
import Foundation
import Logging
import ReachCore
import ReachKafka
import ReachPostgres
import ReachService
import ServiceLifecycle

struct CampaignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign", abstract: "Publish campaign tasks and follow them.",
        subcommands: [Publish.self, Watch.self])

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a task (SPEC §3.1) and publish it on the tasks topic.")
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
        static let configuration = CommandConfiguration(abstract: "Show a campaign's progress until it ends, then a summary.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Campaign id.") var id: String
        @Option(help: "Give up after this many seconds.") var timeout: Int = 600

        func run() async throws {
            let c = try options.load()
            let pg = PostgresClient(url: c.postgres.url, poolSize: 1)
            let store = CampaignStore(client: pg)
            let start = ContinuousClock.now
            var state = "unknown"
            var lastLine = ""
            while ContinuousClock.now - start < .seconds(timeout) {
                // Counters move with each page; the row count is the live truth.
                let live = try await pg.query("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'skipped'), count(*) FILTER (WHERE status IN ('failed', 'dead')), count(*) FROM reach.deliveries WHERE campaign_id = $1", [id]).first
                state = try await store.status(id)?.state ?? "waiting"
                let elapsed = (ContinuousClock.now - start).seconds
                let total = live?.int(3) ?? 0
                let line = String(format: "%6.1fs  %-9@ targeted %7d  sent %7d  skipped %6d  failed %5d  %8.0f/s",
                                  elapsed, state as NSString, total, live?.int(0) ?? 0, live?.int(1) ?? 0, live?.int(2) ?? 0,
                                  elapsed > 0 ? Double(total) / elapsed : 0)
                if line != lastLine { print(line); fflush(nil); lastLine = line }
                if ["done", "cancelled", "failed"].contains(state) { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            guard let status = try await store.status(id) else {
                print("campaign \(id) does not exist")
                throw ExitCode(1)
            }
            print("\ncampaign \(id): \(status.state)\(status.error.map { " (\($0))" } ?? "")")
            print("  by channel and status:")
            for row in try await pg.query("SELECT coalesce(channel, '-'), status, coalesce(reason, ''), count(*) FROM reach.deliveries WHERE campaign_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", [id]) {
                print(String(format: "    %-8@ %-8@ %-13@ %8d", (row[0] ?? "") as NSString, (row[1] ?? "") as NSString, (row[2] ?? "") as NSString, row.int(3) ?? 0))
            }
            if let timing = try await pg.query("SELECT extract(epoch FROM finished_at - started_at)::float8, extract(epoch FROM finished_at - created_at)::float8 FROM reach.campaigns WHERE id = $1 AND finished_at IS NOT NULL", [id]).first,
               let run = Double(timing[0] ?? ""), let total = Double(timing[1] ?? "") {
                let counters = status.counters
                print(String(format: "  %d recipients in %.2f s from start to last row (%.2f s from task accepted): %.0f recipients/s, %.0f sends/s",
                             counters.targeted, run, total, Double(counters.targeted) / max(run, 0.001), Double(counters.sent) / max(run, 0.001)))
            }
            if status.state != "done" { throw ExitCode(1) }
        }
    }
}

struct DevProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-provider",
        abstract: "Run a local provider that accepts SPEC §6 batches on any path (development, demo, benchmarks).",
        discussion: "GET /stats returns what it received so far as JSON.")
    @Option(help: "Port to listen on (127.0.0.1).") var port: Int = 9090
    @Option(help: "Delay before answering each request, in milliseconds.") var delayMs: Int = 0
    @Flag(help: "Read each message's title as its publish time (µs since the epoch) and report latency in /stats (trigger benchmark).")
    var latencyFromTitle = false

    func run() async throws {
        ReachLogHandler.bootstrap(level: .info, format: .json)
        let logger = Logger(label: "reach.dev-provider")
        let provider = DevProvider(delay: .milliseconds(delayMs), latencyFromTitle: latencyFromTitle)
        let app = provider.makeApplication(host: "127.0.0.1", port: port, logger: logger) { bound in
            print("dev provider on http://127.0.0.1:\(bound)")
            fflush(nil)
        }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
