@testable import BerthPlugins
import BerthCore
import Foundation
import XCTest

/// devcontainer.json as a value: the three command forms, JSONC, errors
/// that name the file, line and key, and the fingerprints once-per-workspace
/// commands are rerun by.
final class DevcontainerFileTests: XCTestCase {
    static let path = "/workspace/.devcontainer/devcontainer.json"

    func parse(_ text: String) throws -> DevcontainerFile {
        try DevcontainerFile.parse(text, path: Self.path)
    }

    /// The error parsing `text` throws.
    func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> DevcontainerError? {
        do {
            _ = try parse(text)
            XCTFail("parsed without an error", file: file, line: line)
            return nil
        } catch {
            return error as? DevcontainerError
        }
    }

    // MARK: the three forms

    func test_a_string_is_a_shell_command_and_keeps_its_newlines() throws {
        let file = try parse(#"{ "postCreateCommand": "set -e\nnpm ci\nnpm run build" }"#)
        XCTAssertEqual(file.command(.postCreate), .shell("set -e\nnpm ci\nnpm run build"))
        XCTAssertNil(file.command(.onCreate))
    }

    func test_an_array_is_a_program_and_its_arguments_without_a_shell() throws {
        let file = try parse(#"{ "postStartCommand": ["make", "-C", "a dir", "$HOME"] }"#)
        XCTAssertEqual(file.command(.postStart), .exec(["make", "-C", "a dir", "$HOME"]))
    }

    func test_an_object_runs_its_members_in_parallel_in_the_files_key_order() throws {
        let file = try parse(#"{ "postCreateCommand": { "zeta": "npm ci", "alpha": ["pip", "install", "-e", "."], "mid": "go mod download" } }"#)
        guard case .parallel(let members)? = file.command(.postCreate) else {
            return XCTFail("not the parallel form: \(String(describing: file.command(.postCreate)))")
        }
        XCTAssertEqual(members.map(\.name), ["zeta", "alpha", "mid"], "key order, not sorted")
        XCTAssertEqual(members.map(\.command), [.shell("npm ci"), .exec(["pip", "install", "-e", "."]), .shell("go mod download")])
    }

    func test_a_trailing_comma_and_comments_parse() throws {
        let file = try parse("""
            // Made by the template.
            {
              /* the image */ "image": "mcr.microsoft.com/devcontainers/base",
              "postCreateCommand": [
                "npm", "ci", // clean install
              ],
              "remoteEnv": { "EDITOR": "vim", },
            }
            """)
        XCTAssertEqual(file.command(.postCreate), .exec(["npm", "ci"]))
        XCTAssertEqual(file.remoteEnvironment.map(\.name), ["EDITOR"])
    }

    func test_the_commands_come_in_the_spec_order_whatever_the_files_order() throws {
        let file = try parse("""
            { "postAttachCommand": "e", "postStartCommand": "d", "postCreateCommand": "c",
              "updateContentCommand": "b", "onCreateCommand": "a" }
            """)
        XCTAssertEqual(file.commands.map(\.hook), [.onCreate, .updateContent, .postCreate, .postStart, .postAttach])
        XCTAssertEqual(file.commands.map(\.command), ["a", "b", "c", "d", "e"].map(LifecycleCommand.shell))
        XCTAssertEqual(file.commands.map(\.hook.key),
                       ["onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand", "postAttachCommand"])
    }

    func test_null_an_empty_string_and_an_empty_object_are_no_command() throws {
        let file = try parse(#"{ "onCreateCommand": null, "postCreateCommand": "", "postStartCommand": {}, "postAttachCommand": "x" }"#)
        XCTAssertEqual(file.commands.map(\.hook), [.postAttach])
    }

    func test_other_keys_of_the_spec_are_ignored_whatever_their_type() throws {
        let file = try parse("""
            { "image": 3, "features": { "ghcr.io/x/y:1": {} }, "forwardPorts": [3000, "db:5432"],
              "customizations": { "vscode": { "postCreateCommand": 7 } }, "initializeCommand": { "a": { "b": 1 } } }
            """)
        XCTAssertTrue(file.commands.isEmpty)
        XCTAssertTrue(file.remoteEnvironment.isEmpty)
        XCTAssertTrue(file.containerEnvironmentNames.isEmpty)
    }

    func test_a_byte_order_mark_at_the_start_is_skipped() throws {
        XCTAssertEqual(try parse("\u{FEFF}{ \"postStartCommand\": \"date\" }").command(.postStart), .shell("date"))
    }

    // MARK: errors

    func test_a_number_is_an_error_naming_the_file_line_and_key() {
        let error = parseError("""
            {
              // Set up.
              "name": "demo",
              "image": "debian",


              "postCreateCommand": 42
            }
            """)
        XCTAssertEqual(error?.line, 7)
        XCTAssertEqual(error?.key, "postCreateCommand")
        XCTAssertEqual(error?.description,
                       "/workspace/.devcontainer/devcontainer.json: line 7: postCreateCommand: expected a string, an array of strings or an object")
    }

    func test_a_syntax_error_names_the_file_and_line() {
        let error = parseError("{\n  \"postCreateCommand\": \"a\"\n  \"postStartCommand\": \"b\"\n}")
        XCTAssertEqual(error?.line, 3)
        XCTAssertNil(error?.key)
        XCTAssertEqual(error?.description, "/workspace/.devcontainer/devcontainer.json: line 3: expected ',' or '}'")
    }

    func test_the_line_is_the_keys_own_not_a_mention_in_a_comment_a_string_or_another_object() {
        let error = parseError("""
            {
              "postStartCommand": true,
              // "postStartCommand": "is commented out",
              /* "postStartCommand":
                 "nor here" */
              "description": "\\"postStartCommand\\": in a string",
              "customizations": {
                "postStartCommand": 1
              },
              "forwardPorts": [{ "postStartCommand": 2 }]
            }
            """)
        XCTAssertEqual(error?.line, 2)
        XCTAssertEqual(parseError("/* a\n b\n c */ {\n\"postStartCommand\": 1 }")?.line, 4, "newlines in a comment count")
    }

    func test_an_empty_array_is_an_error() {
        let error = parseError("{\n\n\"onCreateCommand\": []\n}")
        XCTAssertEqual(error?.line, 3)
        XCTAssertEqual(error?.key, "onCreateCommand")
        XCTAssertTrue(error?.problem.contains("empty array") == true, "\(String(describing: error))")
    }

    func test_an_array_with_a_number_or_an_empty_program_is_an_error() {
        XCTAssertTrue(parseError(#"{ "postStartCommand": ["sleep", 1] }"#)?.problem.contains("item 2 is not a string") == true)
        XCTAssertTrue(parseError(#"{ "postStartCommand": ["", "x"] }"#)?.problem.contains("program") == true)
    }

    func test_an_object_inside_the_object_form_is_an_error_naming_the_member_and_its_line() {
        let error = parseError("""
            {
              "postCreateCommand": {
                "deps": "npm ci",
                "db": { "start": "pg_ctl start" }
              }
            }
            """)
        XCTAssertEqual(error?.line, 4)
        XCTAssertEqual(error?.key, "postCreateCommand.db")
        XCTAssertTrue(error?.problem.contains("not another object") == true, "\(String(describing: error))")
    }

    func test_members_of_the_object_form_are_strings_or_arrays_only() {
        XCTAssertEqual(parseError(#"{ "postCreateCommand": { "a": null } }"#)?.key, "postCreateCommand.a")
        XCTAssertEqual(parseError(#"{ "postCreateCommand": { "a": 5 } }"#)?.problem, "expected a string or an array of strings")
        XCTAssertEqual(parseError(#"{ "postCreateCommand": { "a": "" } }"#)?.problem, "an empty command")
        XCTAssertNotNil(parseError(#"{ "postCreateCommand": { "a": [] } }"#))
    }

    func test_names_with_a_space_or_a_control_character_are_refused_and_shown_escaped() {
        for name in ["two words", "tab\\there", "new\\nline", "", "nbsp\\u00a0x", "bidi\\u202eevil", "del\\u007f"] {
            let error = parseError("{ \"postAttachCommand\": { \"ok\": \"true\", \"\(name)\": \"true\" } }")
            XCTAssertNotNil(error, name)
            XCTAssertTrue(error?.description.contains("postAttach:NAME") == true, "\(String(describing: error))")
            XCTAssertFalse(error?.description.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) || $0 == "\u{202E}" } == true,
                           "one log line, nothing invisible: \(String(describing: error))")
        }
        XCTAssertNoThrow(try parse(#"{ "postAttachCommand": { "web:dev-server_2.0": "true", "ünïcode": "true" } }"#))
    }

    func test_a_key_berth_reads_given_twice_is_refused() {
        XCTAssertEqual(parseError("{ \"postStartCommand\": \"a\",\n \"postStartCommand\": \"b\" }")?.line, 2)
        XCTAssertEqual(parseError(#"{ "postStartCommand": { "x": "a", "x": "b" } }"#)?.key, "postStartCommand.x")
        XCTAssertEqual(parseError(#"{ "remoteEnv": { "A": "1", "A": "2" } }"#)?.key, "remoteEnv.A")
        XCTAssertNoThrow(try parse(#"{ "image": "a", "image": "b" }"#), "a key berth ignores is not its business")
    }

    func test_a_NUL_character_in_a_command_is_refused() {
        XCTAssertNotNil(parseError(#"{ "postStartCommand": "echo a\u0000b" }"#))
        XCTAssertNotNil(parseError(#"{ "postStartCommand": ["echo", "a\u0000b"] }"#))
    }

    func test_a_file_that_is_not_an_object_is_an_error() {
        XCTAssertEqual(parseError(#"["postStartCommand"]"#)?.description,
                       "/workspace/.devcontainer/devcontainer.json: expected a JSON object at the top")
    }

    // MARK: remoteEnv and containerEnv

    func test_remoteEnv_keeps_its_order_and_null_means_unset() throws {
        let file = try parse(#"{ "remoteEnv": { "PATH": "${containerEnv:PATH}:/opt/bin", "PAGER": null, "EMPTY": "" } }"#)
        XCTAssertEqual(file.remoteEnvironment.map(\.name), ["PATH", "PAGER", "EMPTY"])
        XCTAssertEqual(file.remoteEnvironment.map(\.value), ["${containerEnv:PATH}:/opt/bin", nil, ""])
    }

    func test_remoteEnv_of_another_type_is_an_error_naming_the_variable() {
        let error = parseError("{\n \"remoteEnv\": {\n  \"A\": \"1\",\n  \"B\": 2\n }\n}")
        XCTAssertEqual(error?.line, 4)
        XCTAssertEqual(error?.key, "remoteEnv.B")
        XCTAssertEqual(parseError(#"{ "remoteEnv": ["A=1"] }"#)?.key, "remoteEnv")
        XCTAssertNotNil(parseError(#"{ "remoteEnv": { "A=B": "1" } }"#), "'=' cannot be in a variable's name")
    }

    func test_containerEnv_gives_its_names_only() throws {
        let file = try parse(#"{ "containerEnv": { "NODE_ENV": "development", "TZ": "UTC" } }"#)
        XCTAssertEqual(file.containerEnvironmentNames, ["NODE_ENV", "TZ"])
        XCTAssertNotNil(parseError(#"{ "containerEnv": "TZ=UTC" }"#))
    }

    // MARK: rerun rules and fingerprints

    func test_each_hook_says_when_it_runs_again() {
        XCTAssertEqual(LifecycleHook.allCases.map(\.rerun),
                       [.oncePerWorkspace, .oncePerWorkspace, .oncePerWorkspace, .everyContainerStart, .everySSHSession])
        XCTAssertEqual(LifecycleHook.allCases.map(\.logName), ["onCreate", "updateContent", "postCreate", "postStart", "postAttach"])
    }

    func test_a_fingerprint_is_fnv1a_of_the_canonical_text() {
        // Computed apart from berth (Python) from the canonical texts.
        XCTAssertEqual(LifecycleCommand.shell("echo hi").canonicalText, #""echo hi""#)
        XCTAssertEqual(LifecycleCommand.shell("echo hi").fingerprint, "1223a2b7e49cd6c7")
        XCTAssertEqual(LifecycleCommand.exec(["echo", "hi"]).fingerprint, "645d80e75a663bed")
        XCTAssertEqual(LifecycleCommand.parallel([("b", .exec(["y"])), ("a", .shell("x"))]).canonicalText, #"{"a":"x","b":["y"]}"#)
        XCTAssertEqual(LifecycleCommand.parallel([("b", .exec(["y"])), ("a", .shell("x"))]).fingerprint, "e1e46e485120daa3")
    }

    func test_a_string_and_an_array_of_the_same_words_have_different_fingerprints() {
        XCTAssertNotEqual(LifecycleCommand.shell("a b").fingerprint, LifecycleCommand.exec(["a", "b"]).fingerprint)
        XCTAssertNotEqual(LifecycleCommand.exec(["a b"]).fingerprint, LifecycleCommand.exec(["a", "b"]).fingerprint)
        XCTAssertNotEqual(LifecycleCommand.shell("[\"a\"]").fingerprint, LifecycleCommand.exec(["a"]).fingerprint)
    }

    func test_formatting_and_comments_keep_the_fingerprint_and_an_edit_changes_it() throws {
        let compact = try parse(#"{"onCreateCommand":["npm","ci"]}"#).command(.onCreate)
        let spread = try parse("{\n  // deps\n  \"onCreateCommand\": [\n    \"npm\",\n    \"ci\",\n  ],\n}").command(.onCreate)
        let edited = try parse(#"{"onCreateCommand":["npm","install"]}"#).command(.onCreate)
        XCTAssertEqual(compact?.fingerprint, spread?.fingerprint)
        XCTAssertNotEqual(compact?.fingerprint, edited?.fingerprint)
    }

    func test_moving_a_parallel_member_keeps_the_fingerprint_and_renaming_one_changes_it() throws {
        let first = try parse(#"{ "postCreateCommand": { "a": "x", "b": ["y"] } }"#).command(.postCreate)
        let moved = try parse(#"{ "postCreateCommand": { "b": ["y"], "a": "x" } }"#).command(.postCreate)
        let renamed = try parse(#"{ "postCreateCommand": { "c": "x", "b": ["y"] } }"#).command(.postCreate)
        let changed = try parse(#"{ "postCreateCommand": { "a": "x", "b": "y" } }"#).command(.postCreate)
        XCTAssertNotEqual(first, moved, "the value keeps the file's order")
        XCTAssertEqual(first?.fingerprint, moved?.fingerprint)
        XCTAssertNotEqual(first?.fingerprint, renamed?.fingerprint)
        XCTAssertNotEqual(first?.fingerprint, changed?.fingerprint)
    }

    func test_a_multi_line_script_has_its_own_fingerprint() {
        XCTAssertNotEqual(LifecycleCommand.shell("a\nb").fingerprint, LifecycleCommand.shell("a b").fingerprint)
        XCTAssertEqual(LifecycleCommand.shell("a\nb").fingerprint.count, 16)
    }
}
