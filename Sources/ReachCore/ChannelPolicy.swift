/// Everything the pipeline needs to know about one channel, built once from
/// configuration: how to batch and pace its sends, how to retry, how long a
/// request may take, and which recipient field it sends to. Channels only send.
public struct ChannelPolicy: Sendable, Equatable {
    public var name: String
    /// Messages per provider request.
    public var batchSize: Int
    /// Requests in flight at once on this channel, per process (every page, trigger batch and retry shares them).
    public var concurrency: Int
    /// Messages per second, cluster-wide; nil: no limit.
    public var ratePerSecond: Int?
    /// Messages per user per rolling day on this channel (0: no cap).
    public var frequencyCapPerDay: Int
    public var retry: RetryPolicy
    /// How long one request may stay on the wire.
    public var timeout: Duration
    public var addressField: AddressField

    public init(name: String, batchSize: Int, concurrency: Int, ratePerSecond: Int? = nil, frequencyCapPerDay: Int = 0,
                retry: RetryPolicy = RetryPolicy(maxAttempts: 4, base: .milliseconds(500), max: .seconds(60)),
                timeout: Duration = .seconds(3), addressField: AddressField? = nil) {
        self.name = name
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.ratePerSecond = ratePerSecond
        self.frequencyCapPerDay = frequencyCapPerDay
        self.retry = retry
        self.timeout = timeout
        self.addressField = addressField ?? AddressField.defaultField(forChannel: name)
    }
}
