import Foundation
import ReachDevTools
import ReachKafka
import ArgumentParser
import ReachService

struct BenchCommand: AsyncParsableCommand {
    /// A producer on the configured broker; the load commands need a running one, not the embedded stand-in.
    static func producer(_ c: ReachConfiguration) throws -> KafkaProducer {
        guard !c.kafka.isEmbedded else {
            FileHandle.standardError.write(Data("reachd: set kafka.brokers (REACH_KAFKA_BROKERS) to a running broker\n".utf8))
            throw ExitCode(1)
        }
        return try KafkaProducer(configuration: .init(bootstrapServers: c.kafka.brokers, properties: c.kafka.properties))
    }

    static let configuration = CommandConfiguration(commandName: "bench", abstract: "Measure parts of reachd on this machine.",
                                                    subcommands: [DelayQueueBench.self, EventsBench.self, FuzzBench.self])

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

    struct EventsBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "events",
            abstract: "Publish trigger events on reach.events at a steady rate (the trigger-latency benchmark's load).",
            discussion: """
                Each event carries its publish time in properties.published_us; a rule whose title is
                {{properties.published_us}} lets `reachd dev-provider --latency-from-title` measure publish → provider.
                """)
        @OptionGroup var options: ConfigOption
        @Option(help: "Events per second.") var rate: Int = 2_000
        @Option(help: "Seconds to publish for.") var seconds: Int = 30
        @Option(help: "The event name.") var event: String = "bench.ping"
        @Option(help: "Distinct user ids (u00000001…).") var users: Int = 100_000

        func run() async throws {
            let c = try options.load()
            let producer = try BenchCommand.producer(c)
            let report = try await EventLoad(producer: producer, topic: c.kafka.topics.events, event: event, users: users)
                .run(rate: rate, seconds: seconds)
            print(report)
        }
    }

    struct FuzzBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "fuzz",
            abstract: "Publish generated tasks and events, valid and not, interleaved (scripts/chaos's fuzz scenario).",
            discussion: """
                Half the messages go to reach.tasks, half to reach.events, from ReachDevTools.InputFuzzer (the suite's
                generator): random bytes, truncated and deep JSON, NUL, invalid UTF-8, wrong types, huge strings,
                unknown fields, boundary numbers and dates. Valid tasks are campaigns f-<n> a day away on inapp;
                valid events are `fz` events. Prints how many of each were valid.
                """)
        @OptionGroup var options: ConfigOption
        @Option(help: "Messages in all.") var count: Int = 10_000
        @Option(help: "The generator's seed.") var seed: UInt64 = 0x5EED_0014
        @Flag(help: "Also publish invalid tasks that carry a phone number, an e-mail address and an ID number where an error could echo them (the log scan's bait).")
        var personalData = false

        static let personal = [
            #"{"kind":"campaign","campaign_id":"pii 138-1234-5678","segment":{"user_ids":["u1"]},"channels":{"sms":1},"template":{"body":"x"}}"#,
            #"{"kind":"campaign","campaign_id":"pii-2","segment":{"user_ids":["alice.smith@example.com",5]},"channels":{"sms":1},"template":{"body":"call +86 138 1234 5678, id 11010519491231002X"}}"#,
            #"{"kind":"campaign","campaign_id":"pii-3","segment":"13812345678","channels":{"sms":1},"template":{"body":"x"}}"#,
        ]

        func run() async throws {
            let c = try options.load()
            let producer = try BenchCommand.producer(c)
            var fuzzer = InputFuzzer(rng: SplitMix64(seed: seed))
            var tasks = 0, validTasks = 0, events = 0, validEvents = 0, bytes = 0
            for i in 0..<count {
                let (topic, message) = i % 2 == 0 ? (c.kafka.topics.tasks, fuzzer.task()) : (c.kafka.topics.events, fuzzer.event())
                if i % 2 == 0 {
                    tasks += 1
                    if message.valid { validTasks += 1 }
                } else {
                    events += 1
                    if message.valid { validEvents += 1 }
                }
                bytes += message.bytes.count
                try await producer.send(topic: topic, key: Array("fuzz-\(i % 7)".utf8), value: message.bytes)
            }
            if personalData {
                for text in Self.personal {
                    tasks += 1
                    try await producer.send(topic: c.kafka.topics.tasks, key: Array("pii".utf8), value: Array(text.utf8))
                }
            }
            print("fuzz: \(tasks) tasks (\(validTasks) valid), \(events) events (\(validEvents) valid), \(bytes) bytes, seed \(seed)")
        }
    }
}

