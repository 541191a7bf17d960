import Foundation
import ReachRedis
import Testing

/// The cluster `scripts/test` starts: three masters, three replicas.
public enum TestCluster {
    public static func url() throws -> String { try TestEnvironment.require("REACH_TEST_REDIS_CLUSTER_URL") }

    public static func client(poolSize: Int = 4) throws -> RedisClient {
        try RedisClient(url: try url(), poolSize: poolSize)
    }

    public static func seeds() throws -> [RedisEndpoint] { try RedisConfiguration(url: try url()).seeds }

    /// A plain single-server connection to one node (admin commands, checks).
    public static func direct(_ node: RedisEndpoint) throws -> RedisClient {
        try RedisClient(url: "redis://\(node.host):\(node.port)/0", poolSize: 1)
    }

    public struct Node: Sendable, CustomStringConvertible {
        public var id: String
        public var endpoint: RedisEndpoint
        public var isMaster: Bool
        public var masterID: String?
        public var slots: [ClosedRange<Int>]
        public func owns(_ slot: Int) -> Bool { slots.contains { $0.contains(slot) } }
        public var description: String { "\(endpoint)\(isMaster ? " (master)" : "")" }
    }

    /// Every node as node `from` sees it; its own line is authoritative for its role and slots.
    public static func nodes(from node: RedisEndpoint) async throws -> (myself: Node, all: [Node]) {
        let text = try await direct(node).send("CLUSTER", "NODES").string ?? ""
        var myself: Node?
        var all: [Node] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 8 else { continue }
            let address = f[1].split(separator: "@")[0]
            let colon = address.lastIndex(of: ":")!
            let endpoint = RedisEndpoint(host: String(address[..<colon]), port: Int(address[address.index(after: colon)...])!)
            let slots: [ClosedRange<Int>] = f.dropFirst(8).compactMap { s in
                if s.hasPrefix("[") { return nil }
                let bounds = s.split(separator: "-").compactMap { Int($0) }
                return bounds.count == 2 ? bounds[0]...bounds[1] : bounds.count == 1 ? bounds[0]...bounds[0] : nil
            }
            let n = Node(id: f[0], endpoint: endpoint, isMaster: f[2].contains("master") && !f[2].contains("fail"),
                         masterID: f[3] == "-" ? nil : f[3], slots: slots)
            if f[2].contains("myself") { myself = n }
            all.append(n)
        }
        return (myself!, all)
    }

    /// The masters, each as it reports itself.
    public static func masters() async throws -> [Node] {
        var result: [Node] = []
        for seed in try seeds() {
            let me = try await nodes(from: seed).myself
            if me.isMaster && !me.slots.isEmpty { result.append(me) }
        }
        return result
    }

    public static func owner(of slot: Int) async throws -> Node {
        guard let node = try await masters().first(where: { $0.owns(slot) }) else {
            throw ProcessFailure(command: "CLUSTER NODES", status: -1, output: "no master owns slot \(slot)")
        }
        return node
    }

    /// Waits until every node reports cluster_state:ok and agrees on slot 's owner.
    public static func settled(slot: Int, owner: RedisEndpoint) async throws -> Bool {
        try await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
            for seed in try seeds() {
                let info = try await direct(seed).send("CLUSTER", "INFO").string ?? ""
                guard info.contains("cluster_state:ok") else { return false }
                let (_, all) = try await nodes(from: seed)
                guard all.contains(where: { $0.endpoint == owner && $0.owns(slot) }) else { return false }
            }
            return true
        }
    }

    /// The server's pid and what it takes to start it again as it was.
    public static func process(of node: RedisEndpoint) async throws -> (pid: pid_t, restart: [String]) {
        let admin = try direct(node)
        let info = try await admin.send("INFO", "server").string ?? ""
        let pidLine = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }!
        func config(_ name: String) async throws -> String {
            try await admin.send("CONFIG", "GET", name).array?.last?.string ?? ""
        }
        let arguments = ["--port", "\(node.port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--cluster-enabled", "yes", "--cluster-config-file", try await config("cluster-config-file"),
                         "--cluster-node-timeout", try await config("cluster-node-timeout"),
                         "--maxmemory-policy", "noeviction", "--daemonize", "yes",
                         "--pidfile", try await config("pidfile"), "--logfile", try await config("logfile"), "--dir", try await config("dir")]
        return (pid_t(pidLine.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces))!, arguments)
    }

    /// Waits for three masters with a replica each, all in sync, and cluster_state:ok everywhere.
    public static func whole() async throws -> Bool {
        try await eventually(timeout: .seconds(60), every: .milliseconds(200)) {
            var masters = 0, replicas = 0
            for seed in try seeds() {
                let admin = try direct(seed)
                guard (try await admin.send("CLUSTER", "INFO").string ?? "").contains("cluster_state:ok") else { return false }
                let info = try await admin.send("INFO", "replication").string ?? ""
                if info.contains("role:master") { masters += 1 }
                if info.contains("role:slave") {
                    guard info.contains("master_link_status:up") else { return false }
                    replicas += 1
                }
            }
            return masters == 3 && replicas == 3
        }
    }
}


extension TestCluster {
    /// Runs `body` while no other test holds the cluster: tests that fail a
    /// node over, migrate a slot or kill a master would confuse each other's
    /// view of who owns what. A lock file, so it holds across suites and processes.
    @TaskLocal static var held = false

    public static func exclusive<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if held { return try await body() }
        let fd = open(NSTemporaryDirectory() + "reach-test-redis-cluster.lock", O_CREAT | O_RDWR, 0o600)
        guard fd >= 0 else { return try await body() }
        defer { close(fd) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 { try await Task.sleep(for: .milliseconds(50)) }
        defer { flock(fd, LOCK_UN) }
        return try await $held.withValue(true) { try await body() }
    }
}

/// `.clusterExclusive` on a suite or test: each test runs under `TestCluster.exclusive`.
public struct ClusterExclusive: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }
    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // A suite's own scope runs all its tests; only each test takes the lock.
        guard !test.isSuite else { return try await function() }
        try await TestCluster.exclusive { try await function() }
    }
}

extension Trait where Self == ClusterExclusive {
    public static var clusterExclusive: ClusterExclusive { ClusterExclusive() }
}
