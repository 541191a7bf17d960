import CLibPQ
import ReachCore
import ReachSupport
#if canImport(Glibc)
import Glibc
#endif

/// One libpq connection, owned by an actor that runs on its own thread.
///
/// Every call is bounded by a timeout (a query still running then is cancelled
/// on the server). A broken connection is re-opened on a later call, with
/// exponential backoff between failed attempts; calls made during the backoff
/// fail at once with a retryable `unavailable` error.
public actor PostgresConnection {
    private nonisolated let executor: BlockingExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public nonisolated let configuration: PostgresConfiguration
    private var connection: OpaquePointer?
    private var reconnect: ReconnectSchedule
    private var copyOutActive = false

    public init(configuration: PostgresConfiguration, name: String = "reach.postgres") {
        self.configuration = configuration
        self.executor = BlockingExecutor(label: name)
        self.reconnect = ReconnectSchedule(base: configuration.reconnectBase, max: configuration.reconnectMax)
    }

    isolated deinit {
        if let connection { PQfinish(connection) }
    }

    // MARK: - Queries

    /// Runs one parameterized statement (`$1`, `$2`, …) and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = [], timeout: Duration? = nil) throws -> PostgresRows {
        let conn = try connected()
        let texts = parameters.map(\.postgresText)
        let sent = CStrings(texts).withPointers { pointers in
            PQsendQueryParams(conn, sql, Int32(texts.count), nil, pointers, nil, nil, 0)
        }
        guard sent == 1 else { throw failure(conn, "send query") }
        return try collect(conn, deadline: deadline(timeout))
    }

    /// Runs SQL text without parameters, possibly several statements (migrations).
    public func script(_ sql: String, timeout: Duration? = nil) throws {
        let conn = try connected()
        guard PQsendQuery(conn, sql) == 1 else { throw failure(conn, "send script") }
        _ = try collect(conn, deadline: deadline(timeout))
    }

    /// `COPY … FROM STDIN` with rows encoded in COPY's text format.
    @discardableResult
    public func copyIn(_ sql: String, rows: [[String?]], timeout: Duration? = nil) throws -> Int {
        var chunk: [UInt8] = []
        chunk.reserveCapacity(1 << 16)
        return try copyIn(sql, timeout: timeout) { put in
            for row in rows {
                CopyText.encode(row, into: &chunk)
                if chunk.count >= 1 << 16 {
                    try put(chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            if !chunk.isEmpty { try put(chunk) }
        }
    }

    /// `COPY … FROM STDIN` of data already in COPY's text format (one buffer, built by the caller).
    @discardableResult
    public func copyIn(_ sql: String, text: [UInt8], timeout: Duration? = nil) throws -> Int {
        try copyIn(sql, timeout: timeout) { put in if !text.isEmpty { try put(text) } }
    }

    private func copyIn(_ sql: String, timeout: Duration?, _ write: (_ put: ([UInt8]) throws -> Void) throws -> Void) throws -> Int {
        let conn = try connected()
        let limit = deadline(timeout)
        guard PQsendQuery(conn, sql) == 1 else { throw failure(conn, "send copy") }
        try awaitReadable(conn, deadline: limit)
        guard let start = PQgetResult(conn) else { throw failure(conn, "copy in") }
        let status = PQresultStatus(start)
        if status != PGRES_COPY_IN {
            let error = resultError(start, conn)
            PQclear(start)
            _ = try? collect(conn, deadline: limit)
            throw error ?? PostgresError(.protocolViolation, "the statement is not a COPY FROM STDIN")
        }
        PQclear(start)
        do {
            try write { try putCopyData(conn, $0) }
        } catch {
            // Abandon the COPY so the connection is usable (the transaction, if any, is then aborted).
            _ = PQputCopyEnd(conn, "abandoned by the client")
            _ = try? collect(conn, deadline: limit)
            throw error
        }
        guard PQputCopyEnd(conn, nil) == 1 else { throw failure(conn, "copy end") }
        return try collect(conn, deadline: limit).affected
    }

    /// Starts `COPY … TO STDOUT`; read rows with `readCopyRows` until it returns nil.
    public func startCopyOut(_ sql: String, timeout: Duration? = nil) throws {
        let conn = try connected()
        let limit = deadline(timeout)
        guard PQsendQuery(conn, sql) == 1 else { throw failure(conn, "send copy") }
        try awaitReadable(conn, deadline: limit)
        guard let start = PQgetResult(conn) else { throw failure(conn, "copy out") }
        defer { PQclear(start) }
        if PQresultStatus(start) != PGRES_COPY_OUT {
            let error = resultError(start, conn)
            _ = try? collect(conn, deadline: limit)
            throw error ?? PostgresError(.protocolViolation, "the statement is not a COPY TO STDOUT")
        }
        copyOutActive = true
    }

    /// Up to `max` rows of the running COPY OUT; nil once it has ended.
    public func readCopyRows(max: Int, timeout: Duration? = nil) throws -> [[String?]]? {
        guard copyOutActive else { return nil }
        guard let conn = connection else {
            copyOutActive = false
            throw PostgresError(.connection, "the connection broke during COPY")
        }
        let limit = deadline(timeout)
        var rows: [[String?]] = []
        while rows.count < max {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(conn, &buffer, 1)
            if length > 0, let buffer {
                rows.append(CopyText.decode(UnsafeRawBufferPointer(start: buffer, count: Int(length))))
                PQfreemem(buffer)
            } else if length == 0 {
                if !rows.isEmpty { return rows }
                try awaitReadable(conn, deadline: limit, consume: true)
            } else if length == -1 {
                copyOutActive = false
                _ = try collect(conn, deadline: limit)
                return rows.isEmpty ? nil : rows
            } else {
                copyOutActive = false
                throw failure(conn, "copy out")
            }
        }
        return rows
    }

    /// Closes the connection; the next call opens a new one.
    public func disconnect() {
        if let connection { PQfinish(connection) }
        connection = nil
        copyOutActive = false
    }

    /// The server's process id for this session (tests use it to kill sessions).
    public func backendPID() throws -> Int32 {
        PQbackendPID(try connected())
    }

    // MARK: - Connection management

    private func connected() throws -> OpaquePointer {
        if let connection {
            if PQstatus(connection) == CONNECTION_OK, !Self.brokenWhileIdle(connection) {
                return connection
            }
            disconnect()
        }
        guard reconnect.mayAttempt else {
            throw PostgresError(.unavailable, "reconnecting to PostgreSQL after \(reconnect.consecutiveFailures) failure(s)")
        }
        let keywords = ["dbname", "connect_timeout", "application_name"]
        let values = [configuration.url, String(max(1, configuration.connectTimeout.milliseconds / 1000)), configuration.applicationName]
        let conn = CStrings(keywords).withPointers { k in
            CStrings(values).withPointers { v in PQconnectdbParams(k, v, 1) }
        }
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { Self.connectionMessage($0) } ?? "out of memory"
            if let conn { PQfinish(conn) }
            reconnect.failed()
            throw PostgresError(.connection, "connect: \(message)")
        }
        // Server notices (NOTICE: … already exists) are not errors; keep them off stderr.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        connection = conn
        reconnect.succeeded()
        return conn
    }

    /// An idle connection whose socket is readable was almost surely closed by
    /// the server (restart, terminated backend: a FATAL message, then EOF).
    /// Pool connections do not LISTEN, so nothing else is expected; replacing
    /// the connection before use keeps the statement from failing half-sent.
    private static func brokenWhileIdle(_ conn: OpaquePointer) -> Bool {
        var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    private func deadline(_ timeout: Duration?) -> ContinuousClock.Instant {
        ContinuousClock.now + (timeout ?? configuration.queryTimeout)
    }

    /// Waits until a result is ready (or input arrived), cancelling on time-out.
    private func awaitReadable(_ conn: OpaquePointer, deadline: ContinuousClock.Instant, consume: Bool = false) throws {
        while consume || PQisBusy(conn) == 1 {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero {
                cancel(conn)
                throw PostgresError(.timeout, "no result within the time limit; the statement was cancelled")
            }
            var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: max(1, remaining.milliseconds)))
            if ready < 0 && errno != EINTR { throw failure(conn, "poll") }
            if ready > 0 {
                guard PQconsumeInput(conn) == 1 else { throw failure(conn, "read") }
                if consume { return }
            }
        }
    }

    /// Reads every result of the statement just sent; throws the first error.
    private func collect(_ conn: OpaquePointer, deadline: ContinuousClock.Instant) throws -> PostgresRows {
        var rows = PostgresRows(columns: [], rows: [], affected: 0)
        var firstError: PostgresError?
        while true {
            try awaitReadable(conn, deadline: deadline)
            guard let result = PQgetResult(conn) else { break }
            defer { PQclear(result) }
            switch PQresultStatus(result) {
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_SINGLE_TUPLE:
                rows = Self.copyRows(result)
            case PGRES_COPY_IN:
                _ = PQputCopyEnd(conn, "unexpected COPY IN")
            case PGRES_COPY_OUT:
                var buffer: UnsafeMutablePointer<CChar>?
                while PQgetCopyData(conn, &buffer, 0) > 0 { PQfreemem(buffer) }
            default:
                if firstError == nil { firstError = resultError(result, conn) }
            }
        }
        if PQstatus(conn) != CONNECTION_OK {
            let error = connectionLost(conn)
            throw firstError.map { PostgresError(.connection, $0.message, sqlState: $0.sqlState) } ?? error
        }
        if let firstError { throw firstError }
        return rows
    }

    private func putCopyData(_ conn: OpaquePointer, _ bytes: [UInt8]) throws {
        let rc = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                PQputCopyData(conn, $0, Int32(buffer.count))
            }
        }
        guard rc == 1 else { throw failure(conn, "copy data") }
    }

    private func cancel(_ conn: OpaquePointer) {
        guard let handle = PQgetCancel(conn) else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(handle, &buffer, Int32(buffer.count))
        PQfreeCancel(handle)
        // Drain what the cancelled statement still sends, so the connection is reusable.
        let drainUntil = ContinuousClock.now + .seconds(5)
        while PQisBusy(conn) == 1, ContinuousClock.now < drainUntil {
            var descriptor = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 100) > 0, PQconsumeInput(conn) == 0 { break }
        }
        while PQisBusy(conn) == 0, let result = PQgetResult(conn) { PQclear(result) }
        if PQisBusy(conn) == 1 { disconnect() }
    }

    private func failure(_ conn: OpaquePointer, _ what: String) -> PostgresError {
        if PQstatus(conn) != CONNECTION_OK { return connectionLost(conn) }
        return PostgresError(.connection, "\(what): \(Self.connectionMessage(conn))")
    }

    private func connectionLost(_ conn: OpaquePointer) -> PostgresError {
        let message = Self.connectionMessage(conn)
        disconnect()
        reconnect.failed()
        return PostgresError(.connection, message.isEmpty ? "connection lost" : message)
    }

    private func resultError(_ result: OpaquePointer, _ conn: OpaquePointer) -> PostgresError? {
        let status = PQresultStatus(result)
        guard status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status == PGRES_NONFATAL_ERROR else { return nil }
        let field = { (code: UInt8) -> String? in
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let message = field(UInt8(ascii: "M")) ?? Self.connectionMessage(conn)
        return PostgresError(.server, message, sqlState: field(UInt8(ascii: "C")))
    }

    private static func copyRows(_ result: OpaquePointer) -> PostgresRows {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                    values.append(String(decoding: UnsafeRawBufferPointer(start: PQgetvalue(result, Int32(r), Int32(c)), count: length), as: UTF8.self))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affected: affected)
    }

    private static func connectionMessage(_ conn: OpaquePointer) -> String {
        let raw = PQerrorMessage(conn).map { String(cString: $0) } ?? ""
        return raw.trimmingTrailingWhitespace
    }
}

/// NUL-terminated copies of strings (nil stays a null pointer) for C calls.
struct CStrings {
    private let storage: [UInt8]
    private let offsets: [Int?]

    init(_ strings: [String?]) {
        var storage: [UInt8] = []
        var offsets: [Int?] = []
        for string in strings {
            guard let string else { offsets.append(nil); continue }
            offsets.append(storage.count)
            storage.append(contentsOf: string.utf8)
            storage.append(0)
        }
        self.storage = storage
        self.offsets = offsets
    }

    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        storage.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            var pointers: [UnsafePointer<CChar>?] = []
            for offset in offsets {
                if let offset, let base { pointers.append(base + offset) } else { pointers.append(nil) }
            }
            pointers.append(nil)
            return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s.removeLast() }
        return String(s)
    }
}
