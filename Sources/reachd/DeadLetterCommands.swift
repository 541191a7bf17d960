import ArgumentParser
import Foundation
import ReachCore
import ReachPostgres
import ReachRedis
import ReachService

struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dlq", abstract: "Dead letters.", subcommands: [Replay.self])

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-queue dead deliveries; they keep their message ids and are still sent at most once.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this campaign.") var campaign: String?
        @Option(help: "Only this channel.") var channel: String?
        @Option(help: "Only dead letters that failed at or after this RFC 3339 time.") var since: String?
        @Option(help: "Only these dead letter ids.") var id: [Int] = []
        @Option(help: "At most this many.") var limit: Int = 10_000

        func run() async throws {
            let c = try options.load()
            if let since, RFC3339.parse(since) == nil {
                FileHandle.standardError.write(Data("reachd: --since must be an RFC 3339 time\n".utf8))
                throw ExitCode(1)
            }
            let postgres = PostgresClient(url: c.postgres.url, poolSize: 1)
            let redis = try RedisClient(url: c.redis.url, poolSize: 1)
            let replay = DeadLetterReplay(postgres: postgres, queue: DelayQueue(redis: redis, prefix: c.redis.prefix,
                                                                                shards: c.pipeline.delayQueueShards))
            let count = try await replay.replay(.init(campaignID: campaign, channel: channel, since: since,
                                                      ids: id.isEmpty ? nil : id, limit: limit))
            print("re-queued \(count) dead deliver\(count == 1 ? "y" : "ies")")
        }
    }
}
