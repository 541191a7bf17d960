// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Reach",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "reachd", targets: ["reachd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    ],
    targets: [
        // C edges: module map + shim header only.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Pure domain: no I/O.
        .target(name: "ReachCore", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Mustache", package: "swift-mustache"),
        ]),
        // Shared plumbing for blocking C clients: serial executors, pools.
        .target(name: "ReachSupport", dependencies: ["ReachCore"]),

        .target(name: "ReachKafka", dependencies: [
            "CRdKafka", "ReachCore", "ReachSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .target(name: "ReachRedis", dependencies: [
            "CHiredis", "ReachCore", "ReachSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ReachPostgres", dependencies: [
            "CLibPQ", "ReachCore", "ReachSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ReachChannels", dependencies: [
            "ReachCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .target(name: "ReachService", dependencies: [
            "ReachCore", "ReachKafka", "ReachRedis", "ReachPostgres", "ReachChannels",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        ]),
        // Development and benchmark tools the CLI runs (dev provider, benchmark drivers); not part of the daemon.
        .target(name: "ReachDevTools", dependencies: [
            "ReachCore", "ReachKafka", "ReachRedis",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "reachd", dependencies: [
            "ReachService", "ReachDevTools", "ReachCore", "ReachKafka", "ReachPostgres", "ReachRedis",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),

        .target(name: "TestSupport", dependencies: ["ReachCore", "ReachPostgres", "ReachRedis"], path: "Tests/TestSupport"),
        .testTarget(name: "ReachCoreTests", dependencies: ["ReachCore"]),
        .testTarget(name: "ReachKafkaTests", dependencies: [
            "ReachKafka", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "ReachRedisTests", dependencies: ["ReachRedis", "TestSupport"]),
        .testTarget(name: "ReachPostgresTests", dependencies: ["ReachPostgres", "TestSupport"]),
        .testTarget(name: "ReachChannelsTests", dependencies: [
            "ReachChannels", "ReachCore", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "ReachServiceTests", dependencies: [
            "ReachService", "ReachDevTools", "ReachKafka", "ReachPostgres", "ReachRedis", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
