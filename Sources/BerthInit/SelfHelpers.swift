import CodeServerPlugin
import GitHubAuthPlugin
import TokenRefreshPlugin

// The programs berth runs itself as, through /proc/self/exe, so that what
// a step must not do inside PID 1 happens in a short-lived process.

/// `berth hash-password`: libargon2 is loaded there, never in the init.
public func runPasswordHash() -> Int32 {
    PasswordHash.runCommand()
}

/// `berth fetch github-user`: GitHub auth's HTTP request, as nobody when
/// berth is root, keeping libcurl and TLS out of PID 1 (see FetchHelper).
public func runGitHubUserFetch() -> Int32 {
    GitHubUserFetch.run()
}

/// `berth fetch token`: token refresh's request to its endpoint, likewise.
public func runTokenEndpointFetch() -> Int32 {
    TokenEndpointFetch.run()
}
