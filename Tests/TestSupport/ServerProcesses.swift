import Foundation

/// A private `redis-server` that a test may stop and start again (same port).
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    public var url: String { "redis://127.0.0.1:\(port)/0" }

    private init(port: Int, directory: URL) {
        self.port = port
        self.directory = directory
    }

    /// Starts a new server on a free port (off the cooperative pool).
    public static func start() async throws -> RedisServerProcess {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.unique("reach-redis"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = RedisServerProcess(port: try TestEnvironment.freePort(), directory: directory)
        try await server.start()
        return server
    }

    public func start() async throws {
        try await blocking { try self.startBlocking() }
    }

    public func stop() async throws {
        try await blocking { try self.stopBlocking() }
    }

    func startBlocking() throws {
        try run("redis-server", ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--daemonize", "yes", "--pidfile", directory.appendingPathComponent("redis.pid").path,
                                 "--logfile", directory.appendingPathComponent("redis.log").path, "--dir", directory.path])
        for _ in 0..<100 {
            if (try? run("redis-cli", ["-p", "\(port)", "ping"]))?.contains("PONG") == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw ProcessFailure(command: "redis-server", status: -1, output: "did not answer PING on port \(port)")
    }

    /// The server's pid (from its pidfile), nil when it is not running.
    public var pid: pid_t? {
        (try? String(contentsOf: directory.appendingPathComponent("redis.pid"), encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    public func freeze() {
        if let pid { kill(pid, SIGSTOP) }
    }

    /// Lets a frozen server go on (SIGCONT).
    public func thaw() {
        if let pid { kill(pid, SIGCONT) }
    }

    /// Stops the server at once (SHUTDOWN NOSAVE) and waits until the port is closed.
    func stopBlocking() throws {
        thaw()  // a frozen server would never answer SHUTDOWN
        _ = try? run("redis-cli", ["-p", "\(port)", "shutdown", "nosave"])
        for _ in 0..<100 {
            if (try? run("redis-cli", ["-p", "\(port)", "ping"])) == nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    deinit {
        try? stopBlocking()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// A private PostgreSQL cluster (initdb in a temporary folder) that a test may
/// restart. Run as the `postgres` user when the tests run as root.
public final class PostgresServerProcess: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    public var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }
    private let bin: String

    /// initdb and start a new cluster on a free port (off the cooperative pool).
    public static func start() async throws -> PostgresServerProcess {
        try await blocking { try PostgresServerProcess() }
    }

    private init() throws {
        let versions = try FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql").sorted {
            $0.compare($1, options: .numeric) == .orderedAscending
        }
        guard let newest = versions.last else { throw ProcessFailure(command: "initdb", status: -1, output: "PostgreSQL is not installed") }
        bin = "/usr/lib/postgresql/\(newest)/bin"
        port = try TestEnvironment.freePort()
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent(TestEnvironment.unique("reach-pg"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try run("chown", ["postgres:", directory.path]) }
        try asPostgres(["\(bin)/initdb", "-D", directory.appendingPathComponent("data").path, "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        try startBlocking()
    }

    private func asPostgres(_ command: [String]) throws {
        if getuid() == 0 {
            try run("/usr/sbin/runuser", ["-u", "postgres", "--"] + command)
        } else {
            try run(command[0], Array(command.dropFirst()))
        }
    }

    public func start() async throws { try await blocking { try self.startBlocking() } }
    public func stop() async throws { try await blocking { try self.stopBlocking() } }
    public func restart() async throws { try await blocking { try self.restartBlocking() } }
    /// Kills the cluster as a crash would (`pg_ctl stop -m immediate`: every
    /// backend is ended at once, no checkpoint); `start()` brings it back on the same port.
    public func crash() async throws { try await blocking { try self.crashBlocking() } }

    /// The postmaster's pid (first line of `postmaster.pid`), nil when it is not running.
    public var postmasterPID: pid_t? {
        (try? String(contentsOf: directory.appendingPathComponent("data/postmaster.pid"), encoding: .utf8))?
            .split(separator: "\n").first.flatMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    func crashBlocking() throws {
        try asPostgres(["\(bin)/pg_ctl", "-D", directory.appendingPathComponent("data").path, "-m", "immediate", "-w", "stop"])
    }

    func startBlocking() throws {
        try asPostgres(["\(bin)/pg_ctl", "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("log").path,
                        "-w", "-t", "30", "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1", "start"])
    }

    func stopBlocking() throws {
        try asPostgres(["\(bin)/pg_ctl", "-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
    }

    func restartBlocking() throws {
        try asPostgres(["\(bin)/pg_ctl", "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("log").path,
                        "-m", "fast", "-w", "-t", "30", "-o", "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1", "restart"])
    }

    deinit {
        try? stopBlocking()
        try? FileManager.default.removeItem(at: directory)
    }
}
