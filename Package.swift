// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "berth",
    products: [
        .executable(name: "berth", targets: ["berth"]),
        .executable(name: "workspace-supervisor", targets: ["workspace-supervisor"]),
    ],
    dependencies: [
        // The CLI as a declaration with generated help; worth its size (see README, binary size).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Typed file descriptors and Errno with EINTR retried in one place.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // The only code that runs between fork and exec, plus the earliest
        // signal blocking (a constructor, before any thread can exist).
        .target(name: "CBerth"),
        .target(name: "CBerthEarly", dependencies: ["CBerth"]),
        // Event loop, spawning, reaping, signals: the shared core.
        .target(
            name: "BerthCore",
            dependencies: ["CBerth", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The provisioning run: steps, their order, the report, drop-ins.
        .target(name: "BerthProvisioning", dependencies: ["BerthCore", "CBerth"]),
        // libcurl's headers only. No pkgConfig on purpose: SwiftPM would add
        // pkg-config's -lcurl to the link, and a linked libcurl maps ~30
        // libraries at every start of berth (+4.6 ms per exec, measured).
        // CBerthHTTP loads it with dlopen on the first request instead.
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CBerthHTTP", dependencies: ["CCurl"]),
        // HTTP requests on a worker thread, completed on the event loop.
        .target(name: "BerthHTTP", dependencies: ["BerthCore", "CBerth", "CBerthHTTP"]),
        // libsystemd's headers only, loaded on demand by CBerthSystemd (the
        // same reason as CCurl: no per-start cost for an optional feature).
        .systemLibrary(name: "CSystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CBerthSystemd", dependencies: ["CSystemd"]),
        // sd_notify to an outer manager, entries to journald.
        .target(name: "BerthSystemd", dependencies: ["CBerthSystemd"]),
        // Services as berth's children: readiness, restarts, health, logs.
        .target(name: "BerthSupervision", dependencies: ["BerthCore", "BerthSystemd", "CBerth", .product(name: "SystemPackage", package: "swift-system")]),
        // The plugins: one folder each under plugins/, each declaring its
        // variables, its provisioning step and its built-in service;
        // plugins/Registry.swift lists them. One module, so adding a plugin
        // touches its folder and one registry line, not this file.
        .target(name: "BerthPlugins", dependencies: ["BerthCore", "BerthProvisioning", "BerthSupervision", "BerthHTTP", "CBerth",
                                                    .product(name: "SystemPackage", package: "swift-system")], path: "plugins",
                exclude: ["README.md"]),
        // The init's life cycle and its three faces (berth, tini, dumb-init).
        .target(
            name: "BerthInit",
            dependencies: [
                "BerthCore",
                "BerthProvisioning",
                "BerthPlugins",
                "BerthSupervision",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The command line: the verbs (status, health, logs...) as
        // swift-argument-parser subcommands; anything else goes to the init.
        .target(
            name: "BerthCommands",
            dependencies: ["BerthInit", "BerthCore", "BerthPlugins", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(name: "berth", dependencies: ["BerthCommands", "CBerthEarly"]),
        // The workspace's third service: activity, reports, status API, backups.
        .target(name: "WorkspaceSupervisor", dependencies: ["BerthCore", "BerthHTTP", .product(name: "SystemPackage", package: "swift-system")]),
        .executableTarget(name: "workspace-supervisor", dependencies: ["WorkspaceSupervisor", "CBerth"]),
        // Small C programs the integration tests run under berth (orphan storms,
        // signal printers, stubborn daemons). Not shipped.
        .executableTarget(name: "berth-testkit", path: "Tests/TestKit"),
        // Runs BerthCore's loop in a single-threaded process for BerthCoreTests.
        .executableTarget(name: "berth-core-probe", dependencies: ["BerthCore", "BerthProvisioning", "CBerthEarly"], path: "Tests/CoreProbe"),
        // Runs programs from the tests: poll() and waitpid, no signals, no threads.
        .target(name: "CTestSupport", path: "Tests/CSupport"),
        .target(name: "TestSupport", dependencies: ["BerthCore", "CBerth", "CTestSupport"], path: "Tests/Support"),
        .testTarget(name: "BerthCoreTests", dependencies: ["BerthCore", "TestSupport"]),
        .testTarget(name: "BerthProvisioningTests", dependencies: ["BerthProvisioning", "TestSupport"]),
        .testTarget(name: "SSHDPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/SSHDPluginTests"),
        .testTarget(name: "SudoPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/SudoPluginTests"),
        .testTarget(name: "SSHKeysPluginTests", dependencies: ["BerthPlugins", "BerthProvisioning", "TestSupport"], path: "Tests/Plugins/SSHKeysPluginTests"),
        .testTarget(name: "GitHubAuthPluginTests", dependencies: ["BerthPlugins", "BerthProvisioning", "TestSupport"], path: "Tests/Plugins/GitHubAuthPluginTests"),
        .testTarget(name: "AICLIPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/AICLIPluginTests"),
        .testTarget(name: "CodeServerPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/CodeServerPluginTests"),
        .testTarget(name: "TokenRefreshPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/TokenRefreshPluginTests"),
        .testTarget(name: "DevcontainerPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/DevcontainerPluginTests"),
        .testTarget(name: "DotfilesPluginTests", dependencies: ["BerthPlugins", "TestSupport"], path: "Tests/Plugins/DotfilesPluginTests"),
        .testTarget(name: "BerthSupervisionTests", dependencies: ["BerthSupervision", "TestSupport"]),
        .testTarget(name: "BerthSystemdTests", dependencies: ["TestSupport"]),
        // The images in real containers; skipped without a Docker engine.
        .testTarget(name: "ImageTests", dependencies: ["TestSupport"]),
        .testTarget(name: "WorkspaceSupervisorTests", dependencies: ["WorkspaceSupervisor", "BerthCore", "TestSupport"]),
        .testTarget(name: "BerthInitTests", dependencies: ["BerthInit", "BerthCore", "TestSupport"]),
        .testTarget(name: "BerthCommandsTests", dependencies: ["BerthCommands", "TestSupport"]),
    ]
)
