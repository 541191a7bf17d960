/// A fixed set of resources (connections) handed out for exclusive use.
///
/// `withResource` waits when every resource is leased; waiting is cancellable and
/// bounded by an optional timeout. Resources are returned even when the body throws.
public actor LeasePool<Resource: Sendable> {
    public struct Exhausted: Error, CustomStringConvertible {
        public let waited: Duration
        public var description: String { "no connection became free within \(waited)" }
    }

    private var idle: [Resource]
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Resource, any Error>)] = []
    private var nextWaiter: UInt64 = 0
    public nonisolated let all: [Resource]

    public init(_ resources: [Resource]) {
        precondition(!resources.isEmpty, "a pool needs at least one resource")
        self.idle = resources
        self.all = resources
    }

    public var idleCount: Int { idle.count }

    public func acquire(timeout: Duration? = nil) async throws -> Resource {
        if let resource = idle.popLast() { return resource }
        nextWaiter += 1
        let id = nextWaiter
        let timer: Task<Void, Never>? = timeout.map { limit in
            Task { [weak self] in
                try? await Task.sleep(for: limit)
                await self?.fail(waiter: id, with: Exhausted(waited: limit))
            }
        }
        defer { timer?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.fail(waiter: id, with: CancellationError()) }
        }
    }

    public func release(_ resource: Resource) {
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: resource)
        } else {
            idle.append(resource)
        }
    }

    private func fail(waiter id: UInt64, with error: any Error) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: error)
    }

    public nonisolated func withResource<T: Sendable>(
        timeout: Duration? = nil,
        _ body: (Resource) async throws -> T
    ) async throws -> T {
        let resource = try await acquire(timeout: timeout)
        do {
            let result = try await body(resource)
            await release(resource)
            return result
        } catch {
            await release(resource)
            throw error
        }
    }
}
