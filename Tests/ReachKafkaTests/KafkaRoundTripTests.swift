import Foundation
import ReachKafka
import Synchronization
import Testing
import TestSupport

/// Collects what a consumer reads in a background task.
final class Received: Sendable {
    private let messages = Mutex<[KafkaMessage]>([])
    var all: [KafkaMessage] { messages.withLock { $0 } }
    var count: Int { messages.withLock { $0.count } }
    func add(_ m: KafkaMessage) { messages.withLock { $0.append(m) } }
}

func consumeInBackground(_ consumer: KafkaConsumer, into received: Received, commit: Bool = true) -> Task<Void, any Error> {
    Task {
        for try await message in consumer.messages {
            received.add(message)
            if commit { try await consumer.commit(message) }
        }
    }
}

func makeConsumer(_ broker: EmbeddedKafka, group: String, topic: String) throws -> KafkaConsumer {
    try KafkaConsumer(configuration: .init(
        bootstrapServers: broker.bootstrapServers, groupID: group, topics: [topic],
        properties: ["session.timeout.ms": "6000", "heartbeat.interval.ms": "500"]))
}

@Suite("Kafka on the embedded broker, over TCP")
struct KafkaRoundTripTests {
    @Test("produce → consume → commit: every record arrives once and the committed offsets reach the end")
    func produceConsumeCommit() async throws {
        let broker = try EmbeddedKafka(topics: ["rt": 3])
        #expect(broker.bootstrapServers.hasPrefix("127.0.0.1:") || broker.bootstrapServers.contains("localhost"))
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: broker.bootstrapServers))
        var reports: [KafkaDeliveryReport] = []
        for i in 0..<30 {
            reports.append(try await producer.send(topic: "rt", key: "user-\(i % 7)", value: "message-\(i)"))
        }
        #expect(Set(reports.map { "\($0.partition):\($0.offset)" }).count == 30, "each record has its own offset")

        let consumer = try makeConsumer(broker, group: TestEnvironment.unique("g"), topic: "rt")
        let received = Received()
        let task = consumeInBackground(consumer, into: received)
        #expect(try await eventually(timeout: .seconds(20)) { received.count >= 30 })
        task.cancel()
        _ = try? await task.value

        #expect(received.count == 30)
        #expect(Set(received.all.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<30).map { "message-\($0)" }))
        // The same key always lands in the same partition.
        let partitionsByKey = Dictionary(grouping: received.all, by: { $0.keyString ?? "" }).mapValues { Set($0.map(\.partition)) }
        #expect(partitionsByKey.values.allSatisfy { $0.count == 1 })

        let partitions = (0..<3).map { TopicPartition("rt", Int32($0)) }
        let committed = try await consumer.committedOffsets(partitions)
        for tp in partitions {
            let high = try await consumer.watermarks(tp).high
            #expect(committed[tp] == .some(high), "committed offset of \(tp) is the end of the partition")
        }
        await consumer.close()
    }

    @Test("a commit the group refuses for a stale generation (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION) is given up, not retried; polling rejoins the group, the uncommitted records come again and their commit lands")
    func staleGenerationCommit() async throws {
        let broker = try EmbeddedKafka(topics: ["stale": 1])
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: broker.bootstrapServers))
        for i in 0..<4 { try await producer.send(topic: "stale", key: nil, value: "m\(i)") }
        let consumer = try makeConsumer(broker, group: TestEnvironment.unique("stale"), topic: "stale")
        let tp = TopicPartition("stale", 0)
        var offsets: [Int64] = []
        var refused: [Int64] = []
        for try await message in consumer.messages {
            offsets.append(message.offset)
            if offsets.count == 2 || offsets.count == 3 {
                broker.failNext(.offsetCommit, with: [offsets.count == 2 ? .unknownMemberID : .illegalGeneration])
            }
            if try await consumer.commitIfStillMember([tp: message.offset + 1]) == false { refused.append(message.offset) }
            if message.offset == 3, try await consumer.committedOffsets([tp])[tp] == .some(4) { break }
            if offsets.count > 40 { break }
        }
        print("kafka: stale generation: read offsets \(offsets), commits given up at \(refused)")
        #expect(refused.count >= 2 && refused.prefix(2) == [1, 2], "the refused commits are given up: \(refused)")
        #expect(Set(offsets) == [0, 1, 2, 3], "every record read, the uncommitted ones again after the rejoin: \(offsets)")
        #expect(try await consumer.committedOffsets([tp])[tp] == .some(4), "the consumer went on and its commit landed")
        await consumer.close()
    }

    @Test("a restarted consumer resumes after the last committed offset: nothing re-read, nothing skipped")
    func resumeAfterCommit() async throws {
        let broker = try EmbeddedKafka(topics: ["resume": 1])
        let producer = try KafkaProducer(configuration: .init(bootstrapServers: broker.bootstrapServers))
        for i in 0..<20 { try await producer.send(topic: "resume", key: nil, value: "m\(i)") }
        let group = TestEnvironment.unique("resume")

        let first = try makeConsumer(broker, group: group, topic: "resume")
        var seen: [String] = []
        for try await message in first.messages {
            seen.append(String(decoding: message.value, as: UTF8.self))
            if seen.count <= 10 { try await first.commit(message) }  // 11th read, not committed: "crashed" while working on it
            if seen.count == 11 { break }
        }
        await first.close()
        #expect(seen == (0..<11).map { "m\($0)" })

        let second = try makeConsumer(broker, group: group, topic: "resume")
        var resumed: [KafkaMessage] = []
        for try await message in second.messages {
            resumed.append(message)
            try await second.commit(message)
            if resumed.count == 10 { break }
        }
        #expect(resumed.first?.offset == 10, "starts at the first uncommitted offset")
        #expect(resumed.map { String(decoding: $0.value, as: UTF8.self) } == (10..<20).map { "m\($0)" })
        let committed = try await second.committedOffsets([TopicPartition("resume", 0)])
        #expect(committed[TopicPartition("resume", 0)] == .some(20))
        await second.close()
    }

    @Test("two consumers in one group split the partitions; a leaving member's partitions go to the other")
    func groupSplitAndRebalance() async throws {
        let broker = try EmbeddedKafka(topics: ["split": 4])
        let group = TestEnvironment.unique("split")
        let a = try makeConsumer(broker, group: group, topic: "split")
        let b = try makeConsumer(broker, group: group, topic: "split")
        let receivedA = Received()
        let receivedB = Received()
        let taskA = consumeInBackground(a, into: receivedA)
        let taskB = consumeInBackground(b, into: receivedB)
        let all = Set((0..<4).map { TopicPartition("split", Int32($0)) })

        #expect(try await eventually(timeout: .seconds(30)) {
            !a.assignment.isEmpty && !b.assignment.isEmpty && a.assignment.isDisjoint(with: b.assignment)
                && a.assignment.union(b.assignment) == all
        }, "both members own partitions, disjoint, covering all four")

        let producer = try KafkaProducer(configuration: .init(bootstrapServers: broker.bootstrapServers))
        for i in 0..<40 { try await producer.send(topic: "split", key: "k\(i)", value: "before-\(i)") }
        #expect(try await eventually(timeout: .seconds(20)) { receivedA.count + receivedB.count >= 40 })
        #expect(receivedA.count > 0 && receivedB.count > 0, "both members received records")
        #expect(Set(receivedA.all.map(\.topicPartition)).isSubset(of: a.assignment))

        taskB.cancel()
        _ = try? await taskB.value
        await b.close()
        #expect(try await eventually(timeout: .seconds(30)) { a.assignment == all }, "the remaining member owns every partition")

        for i in 0..<40 { try await producer.send(topic: "split", key: "k\(i)", value: "after-\(i)") }
        #expect(try await eventually(timeout: .seconds(20)) {
            receivedA.all.filter { String(decoding: $0.value, as: UTF8.self).hasPrefix("after-") }.count >= 40
        })
        let before = (receivedA.all + receivedB.all).filter { String(decoding: $0.value, as: UTF8.self).hasPrefix("before-") }
        #expect(Set(before.map { "\($0.partition):\($0.offset)" }).count == 40)
        #expect(before.count == 40, "no record consumed twice across the rebalance (each was committed)")
        taskA.cancel()
        _ = try? await taskA.value
        await a.close()
    }

    @Test("send throws when the record cannot be delivered")
    func sendFailsWithoutBroker() async throws {
        let port = try TestEnvironment.freePort()
        let producer = try KafkaProducer(configuration: .init(
            bootstrapServers: "127.0.0.1:\(port)", properties: ["message.timeout.ms": "1500"]))
        await #expect(throws: KafkaError.self) {
            try await producer.send(topic: "nowhere", key: nil, value: "lost?")
        }
    }

    @Test("bad client properties are a clear error naming the property")
    func badProperty() throws {
        #expect {
            _ = try KafkaProducer(configuration: .init(bootstrapServers: "127.0.0.1:1", properties: ["no.such.property": "x"]))
        } throws: { error in
            "\(error)".contains("no.such.property")
        }
    }
}
