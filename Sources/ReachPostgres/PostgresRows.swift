/// Rows of a result, in text format, copied out of libpq's result.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let rows: [PostgresRow]
    /// Rows affected, for INSERT/UPDATE/DELETE/COPY.
    public let affected: Int

    public var count: Int { rows.count }
    public var first: PostgresRow? { rows.first }
    public func makeIterator() -> IndexingIterator<[PostgresRow]> { rows.makeIterator() }
}

public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public subscript(_ index: Int) -> String? { values[index] }

    public subscript(_ column: String) -> String? {
        guard let i = columns.firstIndex(of: column) else {
            preconditionFailure("no column \(column) in \(columns)")
        }
        return values[i]
    }

    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    public func int(_ index: Int) -> Int? { self[index].flatMap { Int($0) } }
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" } }
}
