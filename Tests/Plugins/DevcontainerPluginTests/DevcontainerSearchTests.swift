@testable import BerthPlugins
import BerthCore
import Foundation
import Glibc
import XCTest

/// Where devcontainer.json is looked for, in a scratch workspace.
final class DevcontainerSearchTests: XCTestCase {
    var workspace = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/berth-devcontainer-XXXXXX".utf8CString)
        workspace = try XCTUnwrap(mkdtemp(&template).map { String(cString: $0) })
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(atPath: workspace)
    }

    func write(_ relative: String, _ text: String) throws {
        let url = URL(fileURLWithPath: workspace + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func found(named: String? = nil) throws -> (path: String, text: String)? {
        try DevcontainerFile.readFirst(of: DevcontainerFile.candidates(workspaceDirectory: workspace, named: named))
    }

    func test_the_candidates_are_the_devcontainer_folder_then_the_top_level_file() {
        XCTAssertEqual(DevcontainerFile.candidates(workspaceDirectory: "/workspace", named: nil), [
            DevcontainerCandidate(path: "/workspace/.devcontainer/devcontainer.json"),
            DevcontainerCandidate(path: "/workspace/.devcontainer.json"),
        ])
        XCTAssertEqual(DevcontainerFile.candidates(workspaceDirectory: "/workspace/", named: "").map(\.path).first,
                       "/workspace/.devcontainer/devcontainer.json", "an empty BERTH_DEVCONTAINER is not set")
    }

    func test_the_candidates_come_from_WORKSPACE_DIR_and_BERTH_DEVCONTAINER() {
        XCTAssertEqual(DevcontainerFile.candidates(Settings(environment: [:])).first?.path, "/workspace/.devcontainer/devcontainer.json")
        XCTAssertEqual(DevcontainerFile.candidates(Settings(environment: ["WORKSPACE_DIR": "/src/app", "BERTH_DEVCONTAINER": "ci/dev.json"])),
                       [DevcontainerCandidate(path: "/src/app/ci/dev.json", namedBy: "BERTH_DEVCONTAINER")])
    }

    func test_the_devcontainer_folder_comes_before_the_file_at_the_top() throws {
        try write(".devcontainer.json", "{ \"postStartCommand\": \"top\" }")
        try write(".devcontainer/devcontainer.json", "{ \"postStartCommand\": \"folder\" }")
        let file = try XCTUnwrap(DevcontainerFile.load(firstOf: DevcontainerFile.candidates(workspaceDirectory: workspace, named: nil)))
        XCTAssertEqual(file.path, workspace + "/.devcontainer/devcontainer.json")
        XCTAssertEqual(file.command(.postStart), .shell("folder"))
    }

    func test_the_file_at_the_top_is_read_when_the_folder_has_none() throws {
        try write(".devcontainer/other.json", "{}")
        try write(".devcontainer.json", "{ \"postStartCommand\": \"top\" }")
        XCTAssertEqual(try found()?.path, workspace + "/.devcontainer.json")
    }

    func test_a_workspace_without_either_file_has_no_devcontainer() throws {
        XCTAssertNil(try found())
        XCTAssertNil(try DevcontainerFile.load(firstOf: DevcontainerFile.candidates(workspaceDirectory: workspace + "/missing", named: nil)))
    }

    func test_a_relative_BERTH_DEVCONTAINER_is_inside_the_workspace_and_wins_over_the_usual_places() throws {
        try write(".devcontainer/devcontainer.json", "{ \"postStartCommand\": \"usual\" }")
        try write("configs/dev.jsonc", "{ \"postStartCommand\": \"chosen\" }")
        XCTAssertEqual(try found(named: "configs/dev.jsonc")?.path, workspace + "/configs/dev.jsonc")
        XCTAssertEqual(try found(named: "./configs/dev.jsonc")?.text, "{ \"postStartCommand\": \"chosen\" }")
    }

    func test_an_absolute_BERTH_DEVCONTAINER_is_used_as_it_is() throws {
        try write("elsewhere/dc.json", "{}")
        XCTAssertEqual(DevcontainerFile.candidates(workspaceDirectory: "/other", named: workspace + "/elsewhere/dc.json").map(\.path),
                       [workspace + "/elsewhere/dc.json"])
        XCTAssertEqual(try found(named: workspace + "/elsewhere/dc.json")?.path, workspace + "/elsewhere/dc.json")
    }

    func test_a_BERTH_DEVCONTAINER_naming_a_missing_file_is_an_error_naming_the_variable() throws {
        try write(".devcontainer/devcontainer.json", "{}")
        XCTAssertThrowsError(try found(named: "nope.json")) { error in
            XCTAssertEqual("\(error)", "\(self.workspace)/nope.json: no such file (BERTH_DEVCONTAINER names it)")
        }
    }

    func test_a_file_larger_than_the_limit_is_refused_with_its_size() throws {
        try write(".devcontainer.json", "{ \"image\": \"" + String(repeating: "x", count: 200) + "\" }")
        XCTAssertThrowsError(try DevcontainerFile.readFirst(of: [DevcontainerCandidate(path: workspace + "/.devcontainer.json")], sizeLimit: 100)) { error in
            XCTAssertEqual("\(error)", "\(self.workspace)/.devcontainer.json: larger than 100 bytes; a devcontainer.json is a few KiB")
        }
        XCTAssertNotNil(try DevcontainerFile.readFirst(of: [DevcontainerCandidate(path: workspace + "/.devcontainer.json")], sizeLimit: 1000))
    }

    func test_a_fifo_or_a_directory_in_its_place_is_refused_without_waiting() throws {
        XCTAssertEqual(mkdir(workspace + "/.devcontainer", 0o755), 0)
        XCTAssertEqual(mkfifo(workspace + "/.devcontainer/devcontainer.json", 0o644), 0)
        XCTAssertThrowsError(try found()) { error in XCTAssertTrue("\(error)".hasSuffix(": not a regular file"), "\(error)") }
        XCTAssertEqual(unlink(workspace + "/.devcontainer/devcontainer.json"), 0)
        XCTAssertEqual(mkdir(workspace + "/.devcontainer/devcontainer.json", 0o755), 0)
        XCTAssertThrowsError(try found()) { error in XCTAssertTrue("\(error)".hasSuffix(": not a regular file"), "\(error)") }
    }

    func test_a_bad_file_found_in_the_workspace_names_that_file_and_line() throws {
        try write(".devcontainer.json", "{\n  \"postCreateCommand\": [],\n}")
        XCTAssertThrowsError(try DevcontainerFile.load(firstOf: DevcontainerFile.candidates(workspaceDirectory: workspace, named: nil))) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(self.workspace)/.devcontainer.json: line 2: postCreateCommand: an empty array"), "\(error)")
        }
    }
}
