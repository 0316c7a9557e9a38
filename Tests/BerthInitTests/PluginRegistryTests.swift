@testable import BerthInit
import BerthCore
import BerthPlugins
import Foundation
import TestSupport
import XCTest

/// The registry is the one list: steps, services, the quick start check,
/// the secrets kept from children and the variable reference all come
/// from it.
final class PluginRegistryTests: XCTestCase {
    let empty = "/tmp/berth-registry-test-\(getpid())"

    override func setUpWithError() throws {
        mkdir(empty, 0o755)
    }

    override func tearDown() {
        rmdir(empty)
    }

    func configuration(_ extra: [String: String]) throws -> Configuration {
        let environment = ["PATH": "/nonexistent", "BERTH_PLUGINS_DIR": empty, "BERTH_SERVICES_DIR": empty].merging(extra) { $1 }
        return try Configuration.read(NativeOptions(), variable: { environment[$0] }, inherited: { Environment(environment) })
    }

    func test_each_plugin_is_a_folder_under_plugins_named_after_it() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folders = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("plugins").path).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root.appendingPathComponent("plugins/" + name).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }
        XCTAssertFalse(folders.isEmpty, "no plugins/ folder found from \(root.path)")
        XCTAssertEqual(Set(folders), Set(registry.map(\.name)))
        for plugin in registry {
            if let step = plugin.makeStep() { XCTAssertEqual(step.name, plugin.name) }
        }
        XCTAssertEqual(Set(registry.map(\.name)).count, registry.count, "plugin names are unique")
    }

    func test_nothing_set_means_no_work_and_any_variable_that_asks_means_work() throws {
        XCTAssertNil(try configuration([:]).environment, "a plain start builds no environment")
        var checked = 0
        for plugin in registry {
            for variable in plugin.variables where variable.asksForFeature {
                let forms = variable.role == .serviceSwitch ? [variable.name] : [variable.name, variable.name + "_FILE"]
                for name in forms {
                    for value in variable.role == .serviceSwitch ? ["0", "junk"] : ["x"] {
                        XCTAssertNotNil(try configuration([name: value]).environment, "\(plugin.name): \(name)=\(value)")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 20)
        XCTAssertNotNil(try configuration(["BERTH_DISABLE": "sudo"]).environment)
    }

    func test_a_service_switch_alone_plans_no_provisioning() throws {
        let switched = try configuration(["SSHD_ENABLED": "0", "CODE_SERVER_ENABLED": "1"])
        XCTAssertNotNil(switched.environment, "a switch is checked on the full path")
        XCTAssertNil(try NativeProvisioning.plan(switched, verbosity: 1), "no step was asked for")
        XCTAssertNotNil(try NativeProvisioning.plan(try configuration(["SSH_PUBLIC_KEY": "ssh-ed25519 AAAA"]), verbosity: 1))
    }

    func test_a_services_file_or_drop_in_means_work() throws {
        let file = empty + "/web.toml"
        FileManager.default.createFile(atPath: file, contents: Data("command = [\"true\"]\n".utf8))
        defer { unlink(file) }
        XCTAssertNotNil(try configuration([:]).environment)
    }

    func test_every_declared_secret_is_kept_from_the_children() throws {
        let secrets = registry.flatMap(\.variables).filter(\.isSecret).map(\.name)
        XCTAssertTrue(secrets.contains("SSH_PRIVATE_KEY") && secrets.contains("GITHUB_TOKEN_URL") && secrets.contains("AWS_SECRET_ACCESS_KEY"))
        var given = Dictionary(uniqueKeysWithValues: secrets.map { ($0, "value-of-\($0)") })
        given["SSH_PUBLIC_KEY"] = "ssh-ed25519 AAAA"
        given["NOTIFY_SOCKET"] = "/run/notify"
        given["AWS_SECRET_ACCESS_KEY_FILE"] = "/run/secrets/aws"
        let configuration = try configuration(given)
        let children = try XCTUnwrap(configuration.inheritedByChildren(isSet: { given[$0] != nil || given[$0 + "_FILE"] != nil }, inherited: { Environment(given) }))
        for name in secrets { XCTAssertNil(children[name], name) }
        XCTAssertNil(children["NOTIFY_SOCKET"])
        XCTAssertNil(children["AWS_SECRET_ACCESS_KEY_FILE"], "a platform credential's path goes too")
        XCTAssertEqual(children["SSH_PUBLIC_KEY"], "ssh-ed25519 AAAA", "a public key is no secret")
    }

    func test_a_plain_start_changes_nothing_in_the_childrens_environment() throws {
        let configuration = try configuration([:])
        XCTAssertNil(configuration.inheritedByChildren(isSet: { _ in false }, inherited: { XCTFail("built"); return Environment(lines: []) }))
    }

    func test_berths_own_settings_are_read_once_with_one_duration_syntax() throws {
        let read = try configuration(["BERTH_STEP_TIMEOUT": "2m", "BERTH_SHUTDOWN_TIMEOUT": "5", "BERTH_USER": "alice", "BERTH_RUN_DIR": "/tmp/run"])
        XCTAssertEqual(read.stepTimeout, .seconds(120))
        XCTAssertEqual(read.shutdownTimeout, .seconds(5))
        XCTAssertEqual(read.workspaceUserName, "alice")
        XCTAssertEqual(read.runDirectory, "/tmp/run")
        XCTAssertThrowsError(try configuration(["BERTH_STEP_TIMEOUT": "soon"])) { error in
            XCTAssertTrue((error as! UsageError).message.hasPrefix("BERTH_STEP_TIMEOUT='soon': expected a duration"), "\(error)")
        }
        XCTAssertThrowsError(try configuration(["BERTH_COMMAND_USER": "bob"])) { error in
            XCTAssertEqual((error as! UsageError).message, "BERTH_COMMAND_USER='bob': expected workspace (the default: BERTH_USER) or root")
        }
    }
}

/// A name in berth's families that nothing reads is said, not ignored.
final class UnknownVariablesTests: XCTestCase {
    func test_a_typo_is_named_with_the_nearest_known_variable() {
        XCTAssertEqual(UnknownVariables.warnings(in: ["BERTH_USRE", "SUPERVISOR_BACKUP_INTERVALL", "BERTH_NONSENSE_KNOB"]), [
            "BERTH_NONSENSE_KNOB is not a variable berth reads; see docs/variables.md",
            "BERTH_USRE is not a variable berth reads (did you mean BERTH_USER?); see docs/variables.md",
            "SUPERVISOR_BACKUP_INTERVALL is not a variable berth reads (did you mean SUPERVISOR_BACKUP_INTERVAL?); see docs/variables.md",
        ])
    }

    func test_every_declared_variable_and_secret_file_is_known() {
        var names = UnknownVariables.initOptions + Configuration.variables.map(\.name)
        forEachPlugin { plugin in
            for variable in plugin.variables where variable.name.hasPrefix("BERTH_") || variable.name.hasPrefix("SUPERVISOR_") {
                names.append(variable.name)
                if variable.isSecret { names.append(variable.name + "_FILE") }
            }
        }
        XCTAssertGreaterThan(names.count, 30)
        XCTAssertEqual(UnknownVariables.warnings(in: names), [])
    }

    func test_berth_warns_at_start_and_runs_the_command() throws {
        let run = try Subprocess([Built.berth, "--", "/bin/echo", "ran"], environment: ["PATH": "/usr/bin:/bin", "BERTH_KILL_GRAEC": "3"])
        XCTAssertEqual(run.wait(timeout: 10), .exited(0), run.errorText)
        XCTAssertEqual(run.outputText, "ran\n")
        XCTAssertEqual(run.errorText, "berth: BERTH_KILL_GRAEC is not a variable berth reads (did you mean BERTH_KILL_GRACE?); see docs/variables.md\n")
        let quiet = try Subprocess([Built.berth, "--", "/bin/true"], environment: ["PATH": "/usr/bin:/bin", "BERTH_KILL_GRACE": "3"])
        XCTAssertEqual(quiet.wait(timeout: 10), .exited(0))
        XCTAssertEqual(quiet.errorText, "")
    }
}

/// docs/variables.md is the registry's text, so it cannot drift.
final class VariableReferenceTests: XCTestCase {
    func test_docs_variables_md_is_generated_from_the_registry() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("docs/variables.md").path
        let generated = VariableReference.markdown()
        if ProcessInfo.processInfo.environment["BERTH_WRITE_DOCS"] == "1" {
            try generated.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let onDisk = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(onDisk, generated, "docs/variables.md is stale: regenerate with BERTH_WRITE_DOCS=1 swift test --filter VariableReferenceTests")
        for plugin in registry {
            for variable in plugin.variables { XCTAssertTrue(onDisk.contains("`\(variable.name)`"), variable.name) }
        }
    }
}

/// A step's inputs fingerprint: its plugin's option values, and only
/// whether each secret is set.
final class StepInputsFingerprintTests: XCTestCase {
    func fingerprint(_ values: [String: String]) throws -> String {
        let plugin = try XCTUnwrap(registry.first { $0.name == "code-server" })
        return NativeProvisioning.inputsFingerprint(plugin, Settings(environment: values))
    }

    func test_an_option_changes_it_and_a_secrets_value_does_not() throws {
        let base = try fingerprint(["CODE_SERVER_BIND": "0.0.0.0:8080", "CODE_SERVER_PASSWORD": "first-password"])
        XCTAssertEqual(try fingerprint(["CODE_SERVER_BIND": "0.0.0.0:8080", "CODE_SERVER_PASSWORD": "first-password"]), base, "stable")
        XCTAssertNotEqual(try fingerprint(["CODE_SERVER_BIND": "0.0.0.0:9090", "CODE_SERVER_PASSWORD": "first-password"]), base, "an option")
        XCTAssertEqual(try fingerprint(["CODE_SERVER_BIND": "0.0.0.0:8080", "CODE_SERVER_PASSWORD": "another-password"]), base,
                       "a secret's value is not part of it")
        XCTAssertNotEqual(try fingerprint(["CODE_SERVER_BIND": "0.0.0.0:8080"]), base, "whether a secret is set is")
    }
}
