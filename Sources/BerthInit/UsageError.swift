/// A bad argument or variable: one line naming it, exit status 2.
struct UsageError: Error {
    let message: String
}
