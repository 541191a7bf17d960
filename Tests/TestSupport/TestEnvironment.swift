import Foundation

/// Where the servers started by `scripts/test` live. A missing variable is an
/// error, never a skip: the suite needs real servers.
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public let name: String
        public init(name: String) { self.name = name }
        public var description: String { "\(name) is not set: run the suite through scripts/test, which starts PostgreSQL and Redis" }
    }

    public static func require(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { throw Missing(name: name) }
        return value
    }

    /// Admin URL of the shared test PostgreSQL (role `postgres`, database `postgres`).
    public static func postgresAdminURL() throws -> String { try require("REACH_TEST_POSTGRES_ADMIN_URL") }
    /// URL of the shared test database `reach`.
    public static func postgresURL() throws -> String { try require("REACH_TEST_POSTGRES_URL") }
    public static func redisURL() throws -> String { try require("REACH_TEST_REDIS_URL") }

    /// The package root (for the built `reachd` binary and `deploy/` files).
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public static var reachdBinary: URL { packageRoot.appendingPathComponent(".build/debug/reachd") }

    /// A name no other test uses: `prefix-<random>`.
    public static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw ProcessFailure(command: "bind", status: errno, output: "no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

public struct ProcessFailure: Error, CustomStringConvertible {
    public init(command: String, status: Int32, output: String) {
        self.command = command
        self.status = status
        self.output = output
    }
    public let command: String
    public let status: Int32
    public let output: String
    public var description: String { "\(command) exited \(status): \(output)" }
}

/// A child process whose stdout and stderr go to a file (not pipes: servers
/// that daemonize keep inherited descriptors open, which would block a pipe reader).
public struct SpawnedProcess: Sendable {
    public let pid: pid_t
    public let outputPath: String

    public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    public func signal(_ number: Int32) { kill(pid, number) }

    /// Blocks until the process exits; returns its exit code (128 + signal when killed).
    public func waitBlocking() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return Self.exitCode(status)
    }

    /// Waits up to `limit` for the process to exit; kills it and returns nil when it does not.
    public func wait(within limit: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + limit
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            if waitpid(pid, &status, WNOHANG) == pid { return Self.exitCode(status) }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        _ = waitBlocking()
        return nil
    }

    static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// Starts `executable` (looked up in PATH) with the process environment plus `environment`.
public func spawn(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> SpawnedProcess {
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("reach-out")).path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let merged = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, executable, &actions, nil, argv, envp)
    guard rc == 0 else { throw ProcessFailure(command: executable, status: rc, output: "could not start") }
    return SpawnedProcess(pid: pid, outputPath: outputPath)
}

/// Runs a program to completion and returns its output; throws on a non-zero exit.
@discardableResult
public func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = try spawn(executable, arguments)
    defer { unlink(process.outputPath) }
    let code = process.waitBlocking()
    let output = process.output
    guard code == 0 else {
        throw ProcessFailure(command: ([executable] + arguments).joined(separator: " "), status: code, output: output)
    }
    return output
}

/// Runs blocking work (process spawning, waiting) on a Dispatch thread, so it
/// does not hold one of the few cooperative threads other tests need.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// Polls `condition` until it holds or `timeout` passes.
public func eventually(timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(50),
                       _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return true }
        try await Task.sleep(for: interval)
    }
    return try await condition()
}
