import Dispatch

/// A serial executor backed by a private `DispatchQueue`.
///
/// Actors that own a blocking C handle (`PGconn`, `redisContext`) run on one of these,
/// so a call that blocks on the network never occupies a thread of Swift's
/// cooperative pool.
public final class BlockingExecutor: SerialExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        self.queue = DispatchQueue(label: label)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async {
            job.runSynchronously(on: self.asUnownedSerialExecutor())
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}
