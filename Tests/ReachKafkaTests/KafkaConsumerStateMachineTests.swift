@testable import ReachKafka
import Testing

/// The consumer's state machine alone: no broker, no client.
@Suite("KafkaConsumer state machine")
struct KafkaConsumerStateMachineTests {
    typealias Machine = KafkaConsumer.StateMachine<Int>

    @Test("running: polls, and a deinit leaves the group before destroying the client")
    func running() {
        let machine = Machine()
        #expect(machine.phase == .running)
        #expect(machine.poll() == .poll)
        #expect(machine.deinitialize() == .leaveGroupAndDestroy)
    }

    @Test("close: the first call leaves the group, a second one does nothing; polls finish from the first call on")
    func close() {
        var machine = Machine()
        #expect(machine.close() == .leaveGroup)
        #expect(machine.phase == .closing)
        #expect(machine.poll() == .finish)
        #expect(machine.close() == .none)
        #expect(machine.closeFinished() == [])
        #expect(machine.phase == .closed)
        #expect(machine.poll() == .finish)
        #expect(machine.close() == .none)
        #expect(machine.deinitialize() == .destroy)
    }

    @Test("waiters: kept while running or closing, woken when the close finishes, woken at once after it")
    func waiters() {
        var machine = Machine()
        #expect(machine.waitForClose(1) == nil)
        #expect(machine.close() == .leaveGroup)
        #expect(machine.waitForClose(2) == nil)
        #expect(machine.closeFinished() == [1, 2])
        #expect(machine.waitForClose(3) == 3)
        #expect(machine.closeFinished() == [])
    }
}
