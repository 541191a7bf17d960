/// Why an input (a task, an event, a rule) was refused: the JSON path of the
/// offending field and a message a person can act on.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
