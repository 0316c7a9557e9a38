@testable import BerthCommands
import Glibc
import TestSupport
import XCTest

/// berth's command line, through the built binary: the verbs parsed by
/// swift-argument-parser with their own help, and everything else still
/// the init's.
final class CommandLineFrontTests: XCTestCase {
    /// Every verb with what its help must name.
    private let verbs: [(name: String, arguments: [String])] = [
        ("status", ["--json"]), ("health", []), ("logs", ["<NAME>"]), ("restart", ["<NAME>"]),
        ("stop", ["<NAME>"]), ("start", ["<NAME>"]), ("provision", ["--only <STEP>", "-v"]),
        ("hash-password", []), ("fetch", ["<request>"]), ("install-packages", ["<names>"]),
        ("hook-task", ["<NAME>"]), ("hooks", ["run"]), ("setup-notice", []),
    ]
    /// berth runs these itself; help does not show them.
    private let hidden = ["fetch", "hook-task", "setup-notice"]
    private var directory = ""

    override func setUpWithError() throws {
        directory = "/tmp/berth-front-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(mkdir(directory, 0o755), 0)
        // Programs named like a verb, and like one only at the start.
        for name in ["status", "status-not-a-verb"] {
            let path = directory + "/" + name
            XCTAssertEqual(system("printf '#!/bin/sh\\necho program %s \"$@\"\\n' \(name) > \(path) && chmod 755 \(path)"), 0)
        }
    }

    override func tearDown() {
        _ = system("rm -rf '\(directory)'")
    }

    private func berth(_ arguments: [String], as program: String = Built.berth) throws -> Subprocess {
        let run = try Subprocess([program] + arguments, environment: ["PATH": "\(directory):/usr/bin:/bin", "BERTH_RUN_DIR": directory])
        _ = run.wait(timeout: 20)
        return run
    }

    func test_each_verbs_help_exits_zero_and_names_its_arguments() throws {
        for verb in verbs {
            for arguments in [[verb.name, "--help"], [verb.name, "-h"], ["help", verb.name]] {
                let run = try berth(arguments)
                XCTAssertEqual(run.status, .exited(0), "\(arguments): \(run.errorText)")
                XCTAssertEqual(run.errorText, "", "\(arguments)")
                XCTAssertTrue(run.outputText.contains("USAGE: berth \(verb.name)"), "\(arguments): \(run.outputText)")
                for argument in verb.arguments {
                    XCTAssertTrue(run.outputText.contains(argument), "\(arguments) names \(argument): \(run.outputText)")
                }
            }
        }
    }

    func test_an_unknown_option_to_a_verb_is_one_line_naming_it_and_exit_2() throws {
        // With its operand given, so that only the option is wrong.
        let operands = ["logs": ["web"], "restart": ["web"], "stop": ["web"], "start": ["web"], "fetch": ["token"], "hook-task": ["postStart"],
                        "hooks": ["run", "postStart"]]
        for verb in verbs {
            let run = try berth([verb.name] + operands[verb.name, default: []] + ["--bogus"])
            XCTAssertEqual(run.status, .exited(2), verb.name)
            XCTAssertEqual(run.outputText, "", verb.name)
            XCTAssertTrue(run.errorText.hasPrefix("berth \(verb.name): "), run.errorText)
            XCTAssertTrue(run.errorText.contains("'--bogus'"), run.errorText)
            XCTAssertEqual(run.errorText.filter { $0 == "\n" }.count, 1, run.errorText)
            XCTAssertTrue(run.errorText.hasSuffix("\n"), run.errorText)
        }
    }

    func test_a_missing_or_unsendable_service_name_is_bad_usage() throws {
        for arguments in [["logs"], ["restart", "a b"], ["stop", "a\nstart b"], ["start", ""]] {
            let run = try berth(arguments)
            XCTAssertEqual(run.status, .exited(2), "\(arguments): \(run.errorText)")
            XCTAssertTrue(run.errorText.hasPrefix("berth \(arguments[0]): "), run.errorText)
        }
    }

    func test_a_program_named_like_a_verb_runs_after_a_double_dash() throws {
        let run = try berth(["--", "status", "--json"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(run.outputText, "program status --json\n")
        let withOption = try berth(["-v", "status"])
        XCTAssertEqual(withOption.status, .exited(0), withOption.errorText)
        XCTAssertEqual(withOption.outputText, "program status\n")
    }

    func test_a_name_that_only_starts_like_a_verb_is_a_program() throws {
        let run = try berth(["status-not-a-verb", "--json"])
        XCTAssertEqual(run.status, .exited(0), run.errorText)
        XCTAssertEqual(run.outputText, "program status-not-a-verb --json\n")
    }

    /// The compatibility faces have no verbs: `tini status` runs status.
    func test_tini_and_dumb_init_run_a_program_named_like_a_verb() throws {
        for face in [CompatibilityNames.tini, CompatibilityNames.dumbInit] {
            let run = try berth(["status"], as: face)
            XCTAssertEqual(run.status, .exited(0), "\(face): \(run.errorText)")
            XCTAssertEqual(run.outputText, "program status\n", face)
        }
    }

    func test_help_lists_the_verbs_but_never_fetch() throws {
        let help = try berth(["help"])
        XCTAssertEqual(help.status, .exited(0), help.errorText)
        let initHelp = try berth(["--help"])
        XCTAssertEqual(initHelp.status, .exited(0), initHelp.errorText)
        XCTAssertTrue(initHelp.outputText.contains("--kill-grace"), "the init's own options stay")
        for text in [help.outputText, initHelp.outputText] {
            for verb in verbs where !hidden.contains(verb.name) {
                XCTAssertTrue(text.contains("  \(verb.name) "), "\(verb.name) in \(text)")
            }
            for name in hidden { XCTAssertFalse(text.contains(name), text) }
        }
    }

    /// The names the init's path compares argv[1] with are the subcommands'.
    func test_the_verb_names_are_the_subcommands_names() {
        let names = BerthVerbs.configuration.subcommands.map { $0.configuration.commandName ?? "" }
        XCTAssertEqual(names.sorted(), verbs.map(\.name).sorted())
        for name in names + ["help"] {
            XCTAssertTrue(BerthVerbs.isVerb(name), name)
        }
        for name in ["--", "-v", "status-not-a-verb", "Status", "sh", "", "--help"] {
            XCTAssertFalse(BerthVerbs.isVerb(name), name)
        }
    }
}
