/// PostgreSQL's COPY text format: tab-separated columns, `\N` for NULL,
/// backslash escapes for tab, newline, carriage return and backslash.
public enum CopyText {
    public static func encode(_ row: [String?], into out: inout [UInt8]) {
        for (i, value) in row.enumerated() { append(value, into: &out, first: i == 0) }
        out.append(0x0A)
    }

    /// One field (a tab goes before every field but the first); nil is `\N`.
    @inline(__always)
    public static func append(_ value: String?, into out: inout [UInt8], first: Bool = false) {
        if !first { out.append(0x09) }
        guard var value else { out.append(0x5C); out.append(UInt8(ascii: "N")); return }
        // Most values need no escaping: copied whole (scanned and copied as contiguous bytes).
        let plain = value.withUTF8 { utf8 -> Bool in
            for byte in utf8 where byte == 0x5C || byte == 0x09 || byte == 0x0A || byte == 0x0D { return false }
            out.append(contentsOf: utf8)
            return true
        }
        guard !plain else { return }
        for byte in value.utf8 {
            switch byte {
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            default: out.append(byte)
            }
        }
    }

    public static func append(_ value: Int, into out: inout [UInt8]) {
        out.append(0x09)
        out.append(contentsOf: String(value).utf8)
    }

    public static func decode(_ line: UnsafeRawBufferPointer) -> [String?] {
        var bytes = Array(line)
        if bytes.last == 0x0A { bytes.removeLast() }
        var row: [String?] = []
        var field: [UInt8] = []
        var isNull = false
        var i = 0
        func finish() {
            row.append(isNull ? nil : String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            isNull = false
        }
        while i < bytes.count {
            let byte = bytes[i]
            if byte == 0x09 {
                finish()
            } else if byte == 0x5C, i + 1 < bytes.count {
                i += 1
                switch bytes[i] {
                case UInt8(ascii: "N"): isNull = true
                case UInt8(ascii: "t"): field.append(0x09)
                case UInt8(ascii: "n"): field.append(0x0A)
                case UInt8(ascii: "r"): field.append(0x0D)
                case UInt8(ascii: "b"): field.append(0x08)
                case UInt8(ascii: "f"): field.append(0x0C)
                case UInt8(ascii: "v"): field.append(0x0B)
                default: field.append(bytes[i])
                }
            } else {
                field.append(byte)
            }
            i += 1
        }
        finish()
        return row
    }
}
