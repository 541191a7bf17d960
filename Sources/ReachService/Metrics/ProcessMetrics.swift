import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The standard `process_*` series (SPEC §8 "the usual process_* series"), as
/// other Prometheus clients' process collectors name them. swift-prometheus 2.x
/// has no process collector, so this reads `/proc/self` at scrape time and
/// renders the text itself: no state, no sampler tick, values current at every scrape.
/// Off Linux (no `/proc`) it renders nothing.
enum ProcessMetrics {
    struct Sample: Equatable {
        /// User plus system CPU time.
        var cpuSeconds: Double
        var residentBytes: Int
        var virtualBytes: Int
        /// Unix time the process started, in seconds.
        var startTimeSeconds: Double
        var openFDs: Int?
        /// The soft limit on open files; nil when unlimited or unreadable.
        var maxFDs: Int?
    }

    /// Appends the families to a text exposition (HELP and TYPE first, as `promtool check metrics` wants).
    static func emit(into buffer: inout [UInt8]) {
        guard let sample = current() else { return }
        buffer.append(contentsOf: render(sample).utf8)
    }

    static func render(_ s: Sample) -> String {
        var text = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: String?) {
            guard let value else { return }
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", "\(s.cpuSeconds)")
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "\(s.residentBytes)")
        family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "\(s.virtualBytes)")
        family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", "\(s.startTimeSeconds)")
        family("process_open_fds", "gauge", "Number of open file descriptors.", s.openFDs.map { "\($0)" })
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", s.maxFDs.map { "\($0)" })
        return text
    }

    /// This process's sample; nil when `/proc/self/stat` cannot be read or parsed.
    static func current() -> Sample? {
        #if os(Linux)
        guard let stat = readFile("/proc/self/stat"),
              let bootTime = readFile("/proc/stat").flatMap(parseBootTime) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard ticks > 0, pageSize > 0, var sample = parseStat(stat, ticksPerSecond: ticks, pageSize: pageSize, bootTime: bootTime)
        else { return nil }
        sample.openFDs = countOpenFDs()
        sample.maxFDs = readFile("/proc/self/limits").flatMap(parseMaxOpenFiles)
        return sample
        #else
        return nil
        #endif
    }

    /// `/proc/<pid>/stat` (proc(5)): the command name is in parentheses and may
    /// hold spaces or parentheses, so the fields are counted from the last `)`.
    /// Field 3 is the state; 14 utime and 15 stime (clock ticks), 22 starttime
    /// (ticks after boot), 23 vsize (bytes), 24 rss (pages).
    static func parseStat(_ text: String, ticksPerSecond: Double, pageSize: Int, bootTime: Double) -> Sample? {
        guard let paren = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: paren)...].split(separator: " ", omittingEmptySubsequences: true)
        func field(_ number: Int) -> Double? {
            let i = number - 3
            return i < fields.count ? Double(fields[i].trimmingCharacters(in: .newlines)) : nil
        }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24)
        else { return nil }
        return Sample(cpuSeconds: (utime + stime) / ticksPerSecond, residentBytes: Int(rss) * pageSize, virtualBytes: Int(vsize),
                      startTimeSeconds: bootTime + start / ticksPerSecond)
    }

    /// `btime` in `/proc/stat`: boot time, seconds since the epoch.
    static func parseBootTime(_ text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The soft limit of the `Max open files` row of `/proc/self/limits`.
    static func parseMaxOpenFiles(_ text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let columns = line.dropFirst("Max open files".count).split(separator: " ", omittingEmptySubsequences: true)
            return columns.first.flatMap { Int($0) }  // "unlimited" → nil
        }
        return nil
    }

    #if os(Linux)
    /// Entries of `/proc/self/fd`, less the one this listing holds open.
    static func countOpenFDs() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        // The name is read through the pointer, up to its NUL: copying `entry.pointee` would read a
        // whole `struct dirent`, past the end of a short last record — across a page boundary that
        // crashed a scrape (a bad pointer dereference at a page's first byte).
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while let entry = readdir(dir) {
            let name = String(cString: (UnsafeRawPointer(entry) + nameOffset).assumingMemoryBound(to: CChar.self))
            if name != "." && name != ".." { count += 1 }
        }
        return max(0, count - 1)
    }

    /// A whole `/proc` file (they report size 0, so read to EOF).
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
    #endif
}
