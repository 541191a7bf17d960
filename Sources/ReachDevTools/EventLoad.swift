import Foundation
import ReachCore
import ReachKafka

/// The trigger benchmark's load: events published on the events topic at a
/// steady rate, in 10 ms ticks, each carrying its publish time
/// (`properties.published_us`, µs since the epoch) so the receiving provider
/// can measure publish → provider. Sends are not awaited one by one: the
/// producer batches them, and the delivery reports are collected per tick.
public struct EventLoad: Sendable {
    public struct Report: Sendable, CustomStringConvertible {
        var published: Int
        var failed: Int
        var seconds: Double
        public var description: String {
            String(format: "events: %d published in %.2f s (%.0f/s), %d failed", published, seconds, Double(published) / seconds, failed)
        }
    }

    let producer: KafkaProducer
    let topic: String
    let event: String
    let users: Int

    public init(producer: KafkaProducer, topic: String, event: String, users: Int) {
        self.producer = producer
        self.topic = topic
        self.event = event
        self.users = users
    }

    public func run(rate: Int, seconds: Int) async throws -> Report {
        let total = rate * seconds
        let tick = Duration.milliseconds(10)
        let clock = ContinuousClock()
        let start = clock.now
        let run = UInt32.random(in: 0...UInt32.max)
        var sent = 0
        var failed = 0
        try await withThrowingTaskGroup(of: Bool.self) { group in
            var tickNumber = 0
            while sent < total {
                tickNumber += 1
                // Catch up to where the schedule says we should be.
                let due = min(total, Int(Double(rate) * (clock.now - start).seconds) + 1)
                while sent < due {
                    let user = String(format: "u%08d", sent % users + 1)
                    var w = JSONObjectWriter()
                    w.add("event_id", "bench-\(run)-\(sent)")
                    w.add("event", event)
                    w.add("user_id", user)
                    w.add("properties", json: "{\"published_us\":\(ToolClock.micros())}")
                    let value = w.finish()
                    group.addTask {
                        (try? await producer.send(topic: topic, key: user, value: value)) != nil
                    }
                    sent += 1
                }
                try await clock.sleep(until: start + tick * tickNumber)
            }
            for try await ok in group where !ok { failed += 1 }
        }
        return Report(published: sent - failed, failed: failed, seconds: (clock.now - start).seconds)
    }
}
