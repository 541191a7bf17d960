import Logging
import ReachSupport
import Synchronization

/// What the cluster client has had to do; counters since the client started.
public struct RedisClusterStatistics: Sendable, Equatable {
    /// `-MOVED` replies followed (a slot had a new owner).
    public var moved = 0
    /// `-ASK` replies followed (a slot was being migrated).
    public var ask = 0
    /// `-TRYAGAIN` replies waited out (a multi-key call during a migration).
    public var tryAgain = 0
    /// `-CLUSTERDOWN` replies waited out.
    public var clusterDown = 0
    /// `-NOSCRIPT` replies answered by loading the script on that node.
    public var scriptLoads = 0
    /// Commands sent again after a connection to a node failed.
    public var connectionRetries = 0
    /// Slot maps loaded (`CLUSTER SLOTS`).
    public var refreshes = 0
}

/// Routes commands over a Redis Cluster: one `LeasePool` of connections per
/// node, a slot → master map learnt with `CLUSTER SLOTS`, redirections
/// (MOVED, ASK), TRYAGAIN/CLUSTERDOWN waits and NOSCRIPT loads handled here.
final class RedisCluster: Sendable {
    let configuration: RedisConfiguration
    private let logger = Logger(label: "reach.redis.cluster")

    private struct State {
        /// The master serving each slot; nil while unknown or unassigned.
        var owners: [RedisEndpoint?] = Array(repeating: nil, count: RedisKeySlot.count)
        /// Replicas seen in the last map (asked for a map when masters fail).
        /// The distinct owners, in slot order (kept with `owners`).
        var masters: [RedisEndpoint] = []
        var replicas: Set<RedisEndpoint> = []
        var pools: [RedisEndpoint: LeasePool<RedisConnection>] = [:]
        var refresh: Task<Void, Never>?
        var lastRefresh: ContinuousClock.Instant?
        var lastRefreshError: String?
        var anyCounter = 0
        var statistics = RedisClusterStatistics()
    }

    private let state = Mutex(State())
    /// Script source → SHA1 (the same on every node).
    private let hashes = Mutex<[String: String]>([:])

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    var statistics: RedisClusterStatistics { state.withLock { $0.statistics } }

    private var leaseTimeout: Duration { configuration.commandTimeout + configuration.connectTimeout }

    // MARK: - Nodes and the slot map

    func pool(_ node: RedisEndpoint) -> LeasePool<RedisConnection> {
        state.withLock { s in
            if let pool = s.pools[node] { return pool }
            let nodeConfiguration = configuration.node(node)
            let pool = LeasePool((0..<max(1, configuration.poolSize)).map { i in
                RedisConnection(configuration: nodeConfiguration, name: "reach.redis.\(node).\(i)")
            })
            s.pools[node] = pool
            return pool
        }
    }

    /// The masters of the current map.
    var masters: [RedisEndpoint] { state.withLock { $0.masters } }

    private static func distinctOwners(_ owners: [RedisEndpoint?]) -> [RedisEndpoint] {
        var seen = Set<RedisEndpoint>()
        return owners.compactMap { $0 }.filter { seen.insert($0).inserted }
    }

    private func owner(_ slot: Int) -> RedisEndpoint? { state.withLock { $0.owners[slot] } }

    private var hasMap: Bool { state.withLock { !$0.masters.isEmpty } }

    /// A node for a keyless command: the masters in turn, else the first seed.
    private func anyNode() async throws -> RedisEndpoint {
        if !hasMap { await refresh() }
        return try state.withLock { s in
            let masters = s.masters
            if masters.isEmpty {
                throw RedisError(.unavailable, "no cluster node answered CLUSTER SLOTS: \(s.lastRefreshError ?? "no slot map")")
            }
            s.anyCounter &+= 1
            return masters[s.anyCounter % masters.count]
        }
    }

    private func tally(_ update: (inout RedisClusterStatistics) -> Void) {
        state.withLock { update(&$0.statistics) }
    }

    /// Loads the slot map now (joining a load already under way), asking the
    /// nodes in `avoiding` (that just failed) last.
    func refresh(avoiding: Set<RedisEndpoint> = []) async {
        await startRefresh(force: true, avoiding: avoiding)?.value
    }

    /// Starts a background load unless one is running or one finished within
    /// the last 200 ms (a migration answers MOVED for every key of a slot).
    func scheduleRefresh() {
        _ = startRefresh(force: false)
    }

    private func startRefresh(force: Bool, avoiding: Set<RedisEndpoint> = []) -> Task<Void, Never>? {
        state.withLock { s in
            if let running = s.refresh { return running }
            if !force, let last = s.lastRefresh, ContinuousClock.now - last < .milliseconds(200) { return nil }
            let task = Task { await self.loadSlots(avoiding: avoiding) }
            s.refresh = task
            return task
        }
    }

    /// Asks the known masters, then replicas, then the seeds for `CLUSTER
    /// SLOTS`, and takes the first answer.
    private func loadSlots(avoiding: Set<RedisEndpoint>) async {
        let candidates = state.withLock { s in
            var unique = Set<RedisEndpoint>()
            let all = (s.masters.shuffled() + s.replicas.shuffled() + configuration.seeds).filter { unique.insert($0).inserted }
            return all.filter { !avoiding.contains($0) } + all.filter { avoiding.contains($0) }
        }
        var lastError = "no node to ask"
        for node in candidates {
            do {
                let reply = try await pool(node).withResource(timeout: leaseTimeout) {
                    try await $0.send(RedisCommand("CLUSTER", "SLOTS"))
                }
                let (owners, replicas) = try Self.parseSlots(reply, askedNode: node)
                let changed = state.withLock { s -> Int in
                    let changed = zip(s.owners, owners).filter { $0 != $1 }.count
                    s.owners = owners
                    s.masters = Self.distinctOwners(owners)
                    s.replicas = replicas
                    s.lastRefreshError = nil
                    s.statistics.refreshes += 1
                    return changed
                }
                if changed > 0 {
                    logger.info("redis cluster slot map loaded", metadata: [
                        "from": "\(node)", "slots_changed": "\(changed)",
                        "masters": "\(Set(owners.compactMap { $0 }).map(\.description).sorted().joined(separator: ","))",
                    ])
                }
                finishRefresh(error: nil)
                return
            } catch {
                lastError = "\(node): \(error)"
            }
        }
        logger.warning("redis cluster slot map not loaded", metadata: ["error": "\(lastError)"])
        finishRefresh(error: lastError)
    }

    private func finishRefresh(error: String?) {
        state.withLock { s in
            s.refresh = nil
            s.lastRefresh = ContinuousClock.now
            if let error { s.lastRefreshError = error }
        }
    }

    /// `CLUSTER SLOTS`: `[[start, end, [host, port, id, …] (master), [host, port, …] (replicas)…], …]`.
    /// An empty host means the node that answered.
    static func parseSlots(_ reply: RedisValue, askedNode: RedisEndpoint) throws -> ([RedisEndpoint?], Set<RedisEndpoint>) {
        guard let ranges = reply.array, !ranges.isEmpty else {
            throw RedisError(.unexpectedReply, "CLUSTER SLOTS answered no slot ranges")
        }
        func endpoint(_ value: RedisValue) -> RedisEndpoint? {
            guard let fields = value.array, fields.count >= 2, let host = fields[0].string,
                  let port = fields[1].int, host != "?" else { return nil }
            return RedisEndpoint(host: host.isEmpty ? askedNode.host : host, port: Int(port))
        }
        var owners = [RedisEndpoint?](repeating: nil, count: RedisKeySlot.count)
        var replicas = Set<RedisEndpoint>()
        for range in ranges {
            guard let fields = range.array, fields.count >= 3,
                  let start = fields[0].int, let end = fields[1].int,
                  0 <= start, start <= end, end < RedisKeySlot.count else {
                throw RedisError(.unexpectedReply, "CLUSTER SLOTS answered a malformed range")
            }
            guard let master = endpoint(fields[2]) else { continue }
            for slot in Int(start)...Int(end) { owners[slot] = master }
            for replica in fields.dropFirst(3) { if let r = endpoint(replica) { replicas.insert(r) } }
        }
        return (owners, replicas)
    }

    /// A redirection's target: `MOVED 3999 127.0.0.1:6381` → (3999, 127.0.0.1:6381).
    static func parseRedirect(_ message: String, from node: RedisEndpoint) -> (slot: Int, node: RedisEndpoint)? {
        let parts = message.split(separator: " ")
        guard parts.count >= 3, let slot = Int(parts[1]), (0..<RedisKeySlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        let host = String(parts[2][..<colon])
        return (slot, RedisEndpoint(host: host.isEmpty ? node.host : host, port: port))
    }

    // MARK: - Commands

    func send(_ command: RedisCommand) async throws -> RedisValue {
        let reply = try await pipeline([command])[0]
        if case .error(let message) = reply { throw RedisError(.server, message) }
        return reply
    }

    func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        let slots = try commands.map(RedisCommandKeys.slot)
        return try await execute(commands, slots: slots, readOnly: commands.map { RedisCommandKeys.readOnly.contains(RedisCommandKeys.name($0)) },
                                 script: nil)
    }

    /// Readiness of a cluster: the slot map is fresh and covers all 16384
    /// slots, and every master in it answers PING.
    func ping() async throws {
        await refresh()
        let (owners, lastError) = state.withLock { ($0.owners, $0.lastRefreshError) }
        if let lastError { throw RedisError(.unavailable, "no cluster node answered CLUSTER SLOTS: \(lastError)") }
        let uncovered = owners.filter { $0 == nil }.count
        if uncovered > 0 { throw RedisError(.unavailable, "\(uncovered) of \(RedisKeySlot.count) cluster slots have no master") }
        let masters = self.masters
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in masters {
                group.addTask {
                    let reply: RedisValue
                    do {
                        reply = try await self.pool(node).withResource(timeout: self.leaseTimeout) { try await $0.send(RedisCommand("PING")) }
                    } catch let error as RedisError {
                        throw RedisError(error.code, "master \(node): \(error.message)")
                    }
                    guard reply.string == "PONG" else { throw RedisError(.unexpectedReply, "master \(node) answered PING with \(reply)") }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Runs a script once per call: EVALSHA, routed by each call's keys (which
    /// must share a slot), pipelined per node.
    func run(_ script: RedisScript, calls: [(keys: [String], arguments: [RedisArgument])]) async throws -> [RedisValue] {
        guard !calls.isEmpty else { return [] }
        let slots = try calls.map { try RedisCommandKeys.slot(ofKeys: $0.keys.map { Array($0.utf8) }, what: "a script call") }
        let sha: String
        if let known = hashes.withLock({ $0[script.source] }) {
            sha = known
        } else {
            var node = slots.first.flatMap { $0 }.flatMap { owner($0) }
            if node == nil { node = try await anyNode() }
            sha = try await load(script, on: node!)
        }
        let commands = calls.map { RedisCommand("EVALSHA", [sha, $0.keys.count] + $0.keys + $0.arguments) }
        return try await execute(commands, slots: slots, readOnly: commands.map { _ in false }, script: script)
    }

    @discardableResult
    private func load(_ script: RedisScript, on node: RedisEndpoint) async throws -> String {
        let reply = try await pool(node).withResource(timeout: leaseTimeout) {
            try await $0.send(RedisCommand("SCRIPT", "LOAD", script.source))
        }
        guard let sha = reply.string else { throw RedisError(.unexpectedReply, "SCRIPT LOAD answered \(reply)") }
        hashes.withLock { $0[script.source] = sha }
        return sha
    }

    private struct Pending {
        var index: Int
        /// Set after `-ASK`: the node to send it to once, after ASKING.
        var ask: RedisEndpoint?
        var redirects = 0
        var connectionRetried = false
        var scriptLoads = 0
    }

    private enum Outcome: Sendable {
        case replies(RedisEndpoint, [Int], [RedisValue])
        case failed(RedisEndpoint, [Int], any Error)
    }

    /// Sends each command to the node of its slot (nil: any node), the nodes
    /// concurrently, each node's share as one pipeline, and puts the replies
    /// back in order. Follows MOVED/ASK, waits out TRYAGAIN/CLUSTERDOWN within
    /// the command timeout, loads a script a node lacks, and sends a command
    /// again after a connection failure only when it certainly did not run
    /// (or only reads).
    private func execute(_ commands: [RedisCommand], slots: [Int?], readOnly: [Bool],
                         script: RedisScript?) async throws -> [RedisValue] {
        if !hasMap { await refresh() }
        var results = [RedisValue?](repeating: nil, count: commands.count)
        var pending = commands.indices.map { Pending(index: $0) }
        var byIndex: [Int: Pending] = [:]
        let deadline = ContinuousClock.now + configuration.commandTimeout
        var backoff = Duration.milliseconds(10)
        var refreshed = false

        while !pending.isEmpty {
            // Group by target node.
            var groups: [RedisEndpoint: [Int]] = [:]
            byIndex.removeAll(keepingCapacity: true)
            for item in pending {
                let target: RedisEndpoint
                if let ask = item.ask {
                    target = ask
                } else if let slot = slots[item.index] {
                    if let known = owner(slot) {
                        target = known
                    } else {
                        if !refreshed { await refresh(); refreshed = true }
                        guard let known = owner(slot) else {
                            let reason = state.withLock { $0.lastRefreshError }.map { ": \($0)" } ?? ""
                            throw RedisError(.unavailable, "no cluster node serves slot \(slot)\(reason)")
                        }
                        target = known
                    }
                } else {
                    target = try await anyNode()
                }
                groups[target, default: []].append(item.index)
                byIndex[item.index] = item
            }

            let outcomes = await withTaskGroup(of: Outcome.self) { group in
                for (node, indices) in groups {
                    let batch = indices.map { (commands[$0], byIndex[$0]!.ask != nil) }
                    group.addTask {
                        do {
                            return .replies(node, indices, try await self.send(batch, to: node))
                        } catch {
                            return .failed(node, indices, error)
                        }
                    }
                }
                var all: [Outcome] = []
                for await outcome in group { all.append(outcome) }
                return all
            }

            var next: [Pending] = []
            var wait = false
            var needRefresh = false
            var failedNodes = Set<RedisEndpoint>()
            var firstError: (any Error)?
            for outcome in outcomes {
                switch outcome {
                case .replies(let node, let indices, let replies):
                    var loadHere = false
                    for (index, reply) in zip(indices, replies) {
                        var item = byIndex[index]!
                        guard let message = reply.errorMessage else { results[index] = reply; continue }
                        if message.hasPrefix("MOVED "), let (slot, target) = Self.parseRedirect(message, from: node) {
                            state.withLock { s in
                                s.owners[slot] = target
                                if !s.masters.contains(target) { s.masters.append(target) }
                                s.statistics.moved += 1
                            }
                            scheduleRefresh()
                            item.ask = nil
                            item.redirects += 1
                        } else if message.hasPrefix("ASK "), let (_, target) = Self.parseRedirect(message, from: node) {
                            tally { $0.ask += 1 }
                            item.ask = target
                            item.redirects += 1
                        } else if message.hasPrefix("TRYAGAIN") {
                            tally { $0.tryAgain += 1 }
                            item.ask = nil
                            wait = true
                        } else if message.hasPrefix("CLUSTERDOWN") {
                            tally { $0.clusterDown += 1 }
                            item.ask = nil
                            wait = true
                            needRefresh = true
                        } else if message.hasPrefix("NOSCRIPT"), script != nil, item.scriptLoads < 2 {
                            item.scriptLoads += 1
                            loadHere = true
                        } else {
                            results[index] = reply
                            continue
                        }
                        if item.redirects > configuration.maxRedirects {
                            throw RedisError(.unavailable, "\(commands[index].name) was redirected more than \(configuration.maxRedirects) times (last: \(message.split(separator: " ").prefix(3).joined(separator: " ")))")
                        }
                        next.append(item)
                    }
                    if loadHere, let script {
                        tally { $0.scriptLoads += 1 }
                        try await load(script, on: node)
                    }
                case .failed(let node, let indices, let error):
                    // A command certainly not written (no connection), or one
                    // that only reads, may go once more to the slot's owner of
                    // a freshly loaded map; a write that may have run is not
                    // repeated: the caller gets the retryable error, as from a
                    // single server.
                    let redisError = error as? RedisError
                    let safe = redisError.map { $0.isRetryable && ($0.unsent || indices.allSatisfy { readOnly[$0] }) } ?? false
                    let items = indices.map { byIndex[$0]! }
                    if safe && items.allSatisfy({ !$0.connectionRetried }) {
                        tally { $0.connectionRetries += indices.count }
                        needRefresh = true
                        failedNodes.insert(node)
                        for var item in items {
                            item.connectionRetried = true
                            item.ask = nil
                            next.append(item)
                        }
                    } else {
                        scheduleRefresh()
                        if let redisError, redisError.isRetryable, redisError.unsent {
                            firstError = firstError ?? RedisError(.unavailable, "cluster node \(node) unreachable after a slot map refresh: \(redisError.message)")
                        } else if let redisError {
                            firstError = firstError ?? RedisError(redisError.code, "cluster node \(node): \(redisError.message)")
                        } else {
                            firstError = firstError ?? error
                        }
                    }
                }
            }
            if let firstError { throw firstError }
            if needRefresh { await refresh(avoiding: failedNodes); refreshed = true }
            if wait {
                if ContinuousClock.now + backoff > deadline {
                    throw RedisError(.unavailable, "the cluster answered TRYAGAIN/CLUSTERDOWN until the \(configuration.commandTimeout) command timeout")
                }
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(200))
            }
            pending = next
        }
        return results.map { $0! }
    }

    /// One node's share: one pipeline on one leased connection; a command
    /// redirected by ASK goes right after an ASKING.
    private func send(_ batch: [(RedisCommand, Bool)], to node: RedisEndpoint) async throws -> [RedisValue] {
        var commands: [RedisCommand] = []
        var positions: [Int] = []
        commands.reserveCapacity(batch.count)
        for (command, asking) in batch {
            if asking { commands.append(RedisCommand("ASKING")) }
            positions.append(commands.count)
            commands.append(command)
        }
        let replies = try await pool(node).withResource(timeout: leaseTimeout) { try await $0.pipeline(commands) }
        return positions.map { replies[$0] }
    }
}
