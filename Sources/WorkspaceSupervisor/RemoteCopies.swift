import BerthCore
import BerthHTTP
import Glibc

/// Copies of a finished snapshot in object storage: S3 (or compatible),
/// signed with AWS Signature V4 by libcurl, and Azure Blob Storage through a
/// container SAS URL or with the account key (Shared Key). The archive is streamed from disk; its SHA-256 is
/// already known and sent as S3's payload hash.
final class RemoteCopies {
    let loop: EventLoop
    let settings: SupervisorSettings.Backup
    var current: HTTPExchange?
    var finished: (([String]) -> Void)?

    init(loop: EventLoop, settings: SupervisorSettings.Backup) {
        self.loop = loop
        self.settings = settings
    }

    var configured: Bool { settings.s3 != nil || settings.azureSASURL != nil || settings.azureSharedKey != nil }

    /// `done` gets one line per target: "s3 ok", "azure failed: ...".
    func upload(_ manifest: SnapshotManifest, store: BackupStore, done: @escaping ([String]) -> Void) {
        finished = done
        var uploads: [(target: String, request: HTTPRequest)] = []
        let files = [(SnapshotManifest.archiveName, manifest.sha256, "application/gzip"), ("manifest.json", nil as String?, "application/json")]
        if let s3 = settings.s3 {
            for (name, sha, type) in files {
                var request = HTTPRequest(url: "\(s3.url)/\(manifest.id)/\(name)", headers: ["Content-Type: \(type)"], timeout: .seconds(3600))
                if let sha { request.headers.append("x-amz-content-sha256: \(sha)") } else { request.headers.append("x-amz-content-sha256: UNSIGNED-PAYLOAD") }
                request.method = "PUT"
                request.uploadFile = store.path(of: manifest.id, name)
                request.awsSigV4 = ("aws:amz:\(s3.region):s3", "\(s3.accessKeyID):\(s3.secretAccessKey.text)")
                uploads.append(("s3", request))
            }
        }
        if let sas = settings.azureSASURL?.text, let question = sas.firstIndex(of: "?") {
            let container = sas[..<question].hasSuffix("/") ? String(sas[..<question].dropLast()) : String(sas[..<question])
            for (name, _, type) in files {
                var request = HTTPRequest(url: "\(container)/\(manifest.id)/\(name)\(sas[question...])",
                                          headers: ["Content-Type: \(type)", "x-ms-blob-type: BlockBlob", "x-ms-version: 2021-08-06"],
                                          timeout: .seconds(3600))
                request.method = "PUT"
                request.uploadFile = store.path(of: manifest.id, name)
                uploads.append(("azure", request))
            }
        }
        if let target = settings.azureSharedKey {
            for (name, _, type) in files {
                let path = store.path(of: manifest.id, name)
                var info = stat()
                let length = stat(path, &info) == 0 ? Int(info.st_size) : 0
                let signed = AzureSharedKeySigning.putBlob(target, blob: "\(manifest.id)/\(name)", length: length, contentType: type,
                                                          date: AzureSharedKeySigning.now())
                var request = HTTPRequest(url: signed.url, headers: signed.headers, timeout: .seconds(3600))
                request.method = "PUT"
                request.uploadFile = path
                uploads.append(("azure", request))
            }
        }
        var results: [String: String] = [:]
        func next(_ index: Int) {
            guard index < uploads.count else {
                let lines = ["s3", "azure"].compactMap { target in results[target].map { "\(target) \($0)" } }
                finished = nil
                return done(lines)
            }
            let (target, request) = uploads[index]
            // A target that failed once is not tried for its other file.
            if results[target] != nil && results[target] != "ok" { return next(index + 1) }
            current = loop.fetch(request) { [weak self] result in
                self?.current = nil
                switch result {
                case .success(let response) where (200..<300).contains(response.status):
                    results[target] = "ok"
                case .success(let response):
                    // Never the URL: a SAS URL is a credential.
                    results[target] = "failed: HTTP \(response.status) for \(manifest.id)/\(request.uploadFile.map { String($0.split(separator: "/").last ?? "") } ?? "")"
                case .failure(let failure):
                    results[target] = "failed: \(Self.scrub(failure.message, settings: self?.settings))"
                }
                next(index + 1)
            }
        }
        next(0)
    }

    /// Stops the upload in flight; `done` hears "cancelled" at once.
    func cancel() {
        current?.cancel()
        current = nil
        if let done = finished {
            finished = nil
            done(["cancelled"])
        }
    }

    /// libcurl's messages can quote the URL; the SAS query must not reach a log.
    static func scrub(_ message: String, settings: SupervisorSettings.Backup?) -> String {
        guard let sas = settings?.azureSASURL?.text, let question = sas.firstIndex(of: "?") else { return message }
        return message.replacing(String(sas[question...]), with: "?<sas>")
    }
}
