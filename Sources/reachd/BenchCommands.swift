import ArgumentParser
import ReachService

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure parts of reachd on this machine.",
                                                    subcommands: [DelayQueueBench.self])

    struct DelayQueueBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delay-queue",
                                                        abstract: "Fire N delayed items due at once with concurrent schedulers; report rate and lateness.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Items due at the same time.") var items: Int = 100_000
        @Option(help: "Concurrent schedulers.") var schedulers: Int = 2

        func run() async throws {
            let c = try options.load()
            let report = try await DelayQueueBenchmark(redisURL: c.redis.url, items: items, schedulers: schedulers,
                                                       shards: c.pipeline.delayQueueShards).run()
            print(report)
        }
    }
}
