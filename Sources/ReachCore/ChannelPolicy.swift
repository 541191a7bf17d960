/// Everything the pipeline needs to know about one channel, built once from
/// configuration: how to batch and pace its sends, how to retry, how long a
/// request may take, which recipient field it sends to, and when its breaker
/// opens. Channels only send.
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
    /// When the channel's circuit breaker opens and for how long.
    public var breaker: Breaker
    /// How long one request may stay on the wire.
    public var timeout: Duration
    public var addressField: AddressField

    public init(name: String, batchSize: Int, concurrency: Int, ratePerSecond: Int? = nil, frequencyCapPerDay: Int = 0,
                retry: RetryPolicy = RetryPolicy(maxAttempts: 4, base: .milliseconds(500), max: .seconds(60)),
                timeout: Duration = .seconds(3), addressField: AddressField? = nil, breaker: Breaker = Breaker()) {
        self.name = name
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.ratePerSecond = ratePerSecond
        self.frequencyCapPerDay = frequencyCapPerDay
        self.retry = retry
        self.breaker = breaker
        self.timeout = timeout
        self.addressField = addressField ?? AddressField.defaultField(forChannel: name)
    }
}

extension ChannelPolicy {
    /// A circuit breaker's settings (the breaker itself keeps state: `CircuitBreaker`).
    public struct Breaker: Sendable, Equatable {
        public var failureRate: Double
        public var window: Duration
        public var minimumCalls: Int
        public var coolDown: Duration

        public init(failureRate: Double = 0.5, window: Duration = .seconds(30), minimumCalls: Int = 20, coolDown: Duration = .seconds(10)) {
            self.failureRate = failureRate
            self.window = window
            self.minimumCalls = minimumCalls
            self.coolDown = coolDown
        }

        /// A closed breaker with these settings.
        public func make() -> CircuitBreaker {
            CircuitBreaker(failureRate: failureRate, window: window, minimumCalls: minimumCalls, coolDown: coolDown)
        }
    }
}
