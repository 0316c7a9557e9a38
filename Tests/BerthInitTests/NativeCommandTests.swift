@testable import BerthInit
import Glibc
import XCTest

/// Parsing of berth's own command line and BERTH_* variables.
final class NativeCommandTests: XCTestCase {
    func settings(_ arguments: [String], _ environment: [String: String] = [:]) throws -> NativeSettings {
        let command = try NativeFace.parse(arguments)
        return try NativeFace.resolve(command, environment: environment)
    }

    func test_options_stop_at_the_first_operand() {
        XCTAssertEqual(NativeCommand.splitCommand(["ls", "-l"]), ["--", "ls", "-l"])
        XCTAssertEqual(NativeCommand.splitCommand(["-v", "ls", "-l"]), ["-v", "--", "ls", "-l"])
        XCTAssertEqual(NativeCommand.splitCommand(["-r", "TERM:INT", "ls"]), ["-r", "TERM:INT", "--", "ls"])
        XCTAssertEqual(NativeCommand.splitCommand(["--kill-grace", "1", "--", "x"]), ["--kill-grace", "1", "--", "x"])
        XCTAssertEqual(NativeCommand.splitCommand(["--rewrite=TERM:INT", "ls"]), ["--rewrite=TERM:INT", "--", "ls"])
    }

    func test_fast_path_without_options_matches_the_parser() throws {
        for arguments in [["--", "ls", "-l"], ["ls", "-l", "--", "x"], ["sh", "-c", "exit 3"]] {
            let fast = try NativeFace.parse(arguments)
            let full = try NativeCommand.parse(NativeCommand.splitCommand(arguments)).options
            XCTAssertEqual(fast, full)
        }
    }

    func test_every_value_option_is_known_to_the_splitter() throws {
        // If an option taking a value were missing from the list, its value
        // would be taken for the command.
        let parsed = try settings(["-r", "HUP:0", "-e", "3", "-p", "TERM", "--kill-grace", "2", "sleep", "1"])
        XCTAssertEqual(parsed.policy.command, ["sleep", "1"])
        XCTAssertEqual(parsed.policy.rewrites, [SIGHUP: 0])
        XCTAssertEqual(parsed.policy.exitCodesMappedToZero, [3])
        XCTAssertEqual(parsed.policy.parentDeathSignal, SIGTERM)
    }

    func test_environment_supplies_options_and_the_command_line_wins() throws {
        let fromEnvironment = try settings(["true"], [
            "BERTH_VERBOSITY": "3", "BERTH_KILL_GROUP": "yes", "BERTH_REWRITE": "TERM:INT, HUP:0",
            "BERTH_REMAP_EXIT": "1,2", "BERTH_KILL_GRACE": "0.25", "BERTH_PDEATH_SIGNAL": "KILL",
        ])
        XCTAssertEqual(fromEnvironment.verbosity, 3)
        XCTAssertEqual(fromEnvironment.policy.signalTarget, .processGroup)
        XCTAssertEqual(fromEnvironment.policy.rewrites, [SIGTERM: SIGINT, SIGHUP: 0])
        XCTAssertEqual(fromEnvironment.policy.exitCodesMappedToZero, [1, 2])
        XCTAssertEqual(fromEnvironment.policy.parentDeathSignal, SIGKILL)
        guard case .terminateEveryone(let grace) = fromEnvironment.policy.afterMainExit else { return XCTFail() }
        XCTAssertEqual(grace, .milliseconds(250))

        let overridden = try settings(["-r", "USR1:USR2", "--kill-grace", "1", "true"], ["BERTH_REWRITE": "TERM:INT", "BERTH_KILL_GRACE": "9"])
        XCTAssertEqual(overridden.policy.rewrites, [SIGUSR1: SIGUSR2])
        guard case .terminateEveryone(let cliGrace) = overridden.policy.afterMainExit else { return XCTFail() }
        XCTAssertEqual(cliGrace, .seconds(1))
    }

    func test_defaults_are_berths() throws {
        let parsed = try settings(["true"])
        XCTAssertEqual(parsed.verbosity, 1)
        XCTAssertEqual(parsed.policy.signalTarget, .child)
        XCTAssertEqual(parsed.policy.isolation, .newProcessGroup)
        guard case .terminateEveryone(let grace) = parsed.policy.afterMainExit else { return XCTFail() }
        XCTAssertEqual(grace, .seconds(5))
    }

    func test_rewrites_reject_what_cannot_be_received_or_sent() {
        for text in ["KILL:TERM", "STOP:1", "CHLD:1", "TERM", "TERM:", ":TERM", "TERM:NOPE", "1:2:3"] {
            XCTAssertThrowsError(try NativeFace.parseRewrite(text, source: "--rewrite"), text)
        }
        XCTAssertEqual(try? NativeFace.parseRewrite("WINCH:0", source: "x").1, 0)
    }
}

final class CompatibilityParsingTests: XCTestCase {
    func test_dumb_init_rewrites_read_like_sscanf() {
        XCTAssertEqual(DumbInitFace.parseRewrite("15:2").map { [$0.0, $0.1] }, [15, 2])
        XCTAssertEqual(DumbInitFace.parseRewrite("1:31").map { [$0.0, $0.1] }, [1, 31])
        XCTAssertEqual(DumbInitFace.parseRewrite("15:0").map { [$0.0, $0.1] }, [15, 0])
        XCTAssertEqual(DumbInitFace.parseRewrite("15:12trailing").map { [$0.0, $0.1] }, [15, 12])
        for bad in ["", "herp", "herp:derp", "15", "15::12", "15:derp", "0:1", "1:32", "32:1"] {
            XCTAssertNil(DumbInitFace.parseRewrite(bad), bad)
        }
    }

    func test_tini_verbosity_reads_like_atoi() {
        XCTAssertEqual(atoiLike("3"), 3)
        XCTAssertEqual(atoiLike("2x"), 2)
        XCTAssertEqual(atoiLike("x"), 0)
        XCTAssertEqual(atoiLike(""), 0)
        XCTAssertEqual(atoiLike("-1"), -1)
    }
}
