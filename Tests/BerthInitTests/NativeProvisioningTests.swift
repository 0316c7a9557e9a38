@testable import BerthInit
import BerthCore
import BerthProvisioning
import XCTest

final class NativeProvisioningTests: XCTestCase {
    /// The fast "nothing to provision" check must know every variable that
    /// asks for a step, or a step would silently never run.
    func test_the_requesting_variables_are_exactly_the_steps_inputs() {
        XCTAssertEqual(Set(NativeProvisioning.requestingVariables), Set(NativeProvisioning.allSteps().flatMap(\.inputVariables)))
    }

    func test_nothing_set_means_no_work_and_any_input_means_work() {
        let empty = "/tmp/berth-no-plugins-\(getpid())"
        XCTAssertFalse(NativeProvisioning.mayHaveWork(Settings(environment: ["PATH": "/nonexistent", "BERTH_PLUGINS_DIR": empty])))
        for name in NativeProvisioning.requestingVariables {
            for variable in [name, name + "_FILE"] {
                XCTAssertTrue(NativeProvisioning.mayHaveWork(Settings(environment: ["PATH": "/nonexistent", "BERTH_PLUGINS_DIR": empty, variable: "x"])), variable)
            }
        }
    }
}
