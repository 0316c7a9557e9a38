@testable import BerthCore
import XCTest

/// One duration syntax for every setting: the images' `300s` and berth's
/// bare seconds both mean what they meant.
final class DurationSettingTests: XCTestCase {
    func test_numbers_with_units_parse_as_the_images_write_them() {
        XCTAssertEqual(parseDuration("30s"), .seconds(30))
        XCTAssertEqual(parseDuration("300s"), .seconds(300))
        XCTAssertEqual(parseDuration("15m"), .seconds(900))
        XCTAssertEqual(parseDuration("1h30m"), .seconds(5400))
        XCTAssertEqual(parseDuration("7d"), .seconds(7 * 86400))
        XCTAssertEqual(parseDuration("250ms"), .milliseconds(250))
        XCTAssertEqual(parseDuration("1.5h"), .seconds(5400))
    }

    func test_a_bare_number_means_seconds() {
        XCTAssertEqual(parseDuration("300"), .seconds(300))
        XCTAssertEqual(parseDuration("0.5"), .milliseconds(500))
        XCTAssertEqual(parseDuration("0"), .zero)
    }

    func test_anything_else_is_refused() {
        for bad in ["", "s", "-1s", "1w", "10 s", "5m30", "1..5s", "nan", "1e3", "99999999d"] {
            XCTAssertNil(parseDuration(bad), bad)
        }
    }

    func test_a_setting_out_of_range_names_the_variable_and_the_range() {
        let settings = Settings(environment: ["BERTH_STEP_TIMEOUT": "2d", "BERTH_KILL_GRACE": "soon"])
        XCTAssertThrowsError(try settings.duration("BERTH_STEP_TIMEOUT", default: .seconds(60))) { error in
            XCTAssertEqual("\(error)", "BERTH_STEP_TIMEOUT='2d': expected a duration from 0 s to 1 d, like 300s, 5m, 1h30m or 90 (seconds)")
        }
        XCTAssertThrowsError(try settings.duration("BERTH_KILL_GRACE", default: .seconds(5))) { error in
            XCTAssertTrue("\(error)".hasPrefix("BERTH_KILL_GRACE='soon': expected a duration"), "\(error)")
        }
        XCTAssertEqual(try settings.duration("BERTH_SHUTDOWN_TIMEOUT", default: .seconds(8)), .seconds(8))
    }

    func test_durations_are_shown_in_seconds_or_milliseconds() {
        XCTAssertEqual(Duration.seconds(90).shortDescription, "90 s")
        XCTAssertEqual(Duration.milliseconds(1500).shortDescription, "1.5 s")
        XCTAssertEqual(Duration.milliseconds(250).shortDescription, "0.25 s")
        XCTAssertEqual(Duration.zero.shortDescription, "0 s")
        XCTAssertEqual(Duration.seconds(2 * 86400).shortDescription, "2 d")
    }
}
