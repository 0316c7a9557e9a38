/// The init's options, resolved from the command line and BERTH_* variables.
struct NativeSettings {
    var policy: InitPolicy
    var verbosity: Int
    var warnOnReap: Bool
}
