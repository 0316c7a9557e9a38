import ArgumentParser
import BerthPlugins

/// `berth fetch github-user|token`: hidden. berth runs itself so, as
/// nobody when it is root, for each HTTP request GitHub auth and token
/// refresh make, keeping libcurl and TLS out of PID 1 (FetchHelper). The
/// request comes on stdin, the answer goes to stdout.
struct FetchCommand: Verb {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "berth's own HTTP helper (request on stdin, answer on stdout).",
        shouldDisplay: false
    )

    enum Request: String, ExpressibleByArgument, CaseIterable {
        case githubUser = "github-user"
        case token
    }

    @Argument(help: "What to fetch.")
    var request: Request

    func perform() -> Int32 {
        switch request {
        case .githubUser: GitHubUserFetch.run()
        case .token: TokenEndpointFetch.run()
        }
    }
}
