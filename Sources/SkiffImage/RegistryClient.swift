import Foundation
@preconcurrency import Glibc
import SkiffKernel

/// A client for one registry speaking the OCI distribution API v2 (distribution-spec spec.md):
/// it picks https (plain http only for loopback or insecure names, after https failed),
/// answers `WWW-Authenticate` challenges (Bearer tokens from the realm, or Basic), and turns the
/// registry's error JSON into messages that say what to do. Safe to use from several threads:
/// layers download in parallel through one client.
public final class RegistryClient: @unchecked Sendable {
    /// The registry as in a `Reference` (`docker.io`, `localhost:5000`).
    public let registry: String
    /// Where requests go (`registry-1.docker.io` for Docker Hub).
    public let host: String
    public let settings: RegistrySettings
    let credentials: Credentials?
    let transport: HTTPTransport

    private let lock = NSLock()
    private var baseURL: String?
    /// `Authorization` values by scope; Basic auth is stored under "*" and serves every scope.
    private var authorizations: [String: String] = [:]

    /// `credentials` default to the ones `skiff login` saved for `registry`.
    public init(registry: String, settings: RegistrySettings = RegistrySettings(), credentials: Credentials? = nil) {
        self.registry = registry
        host = registry == Reference.dockerHub ? "registry-1.docker.io" : registry
        self.settings = settings
        self.credentials = credentials ?? settings.credentials.credentials(for: registry)
        transport = HTTPTransport(extraTrustRoots: { [settings] host, port in settings.trustRoots(host: host, port: port) })
    }

    // MARK: - Endpoints

    /// Checks that the registry answers the v2 API and, with credentials, that it accepts them
    /// (what `skiff login` verifies before saving anything).
    public func verifyLogin() throws(SkiffError) {
        guard let credentials else { throw SkiffError(.invalidInput, "login to \(registry): no user name and password given") }
        let response = try send(HTTPRequest("GET", "/v2/"), scope: "", action: "log in to \(registry)")
        guard response.status == 200 else {
            throw failure(response, action: "log in to \(registry) as \(credentials.username)")
        }
    }

    /// A manifest or index, as served: its bytes, media type and digest (the sha256 of the
    /// bytes, which is what a digest reference names).
    public func manifest(repository: String, reference: String) throws(SkiffError) -> (bytes: [UInt8], mediaType: String, digest: Digest) {
        var request = HTTPRequest("GET", "/v2/\(repository)/manifests/\(reference)")
        request.headers = [
            (
                "Accept",
                [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList].joined(separator: ", ")
            )
        ]
        // containerd refuses manifests over 4 MiB; so do we, so a hostile server cannot fill memory.
        request.destination = .memory(limit: 4 << 20)
        let action = "pull \(registry)/\(repository):\(reference)"
        let response = try send(request, scope: Self.scope(repository, "pull"), action: action)
        guard response.status == 200 else { throw failure(response, action: action) }
        let digest = Digest(of: response.body)
        if reference.hasPrefix("sha256:"), reference != digest.description {
            throw SkiffError(
                .invalidInput, "\(action): the registry served a manifest whose digest is \(digest), not the one asked for; nothing stored")
        }
        if let served = response.header("Docker-Content-Digest"), served.hasPrefix("sha256:"), served != digest.description {
            throw SkiffError(
                .invalidInput, "\(action): the manifest's bytes hash to \(digest) but the registry says \(served); nothing stored")
        }
        var mediaType = response.header("Content-Type").map { String($0.prefix { $0 != ";" }) } ?? ""
        if !MediaType.manifests.contains(mediaType) && !MediaType.indexes.contains(mediaType) {
            // Some registries serve application/json; the document names its own type.
            struct Typed: Decodable { var mediaType: String? }
            mediaType = (try? JSONDecoder().decode(Typed.self, from: Data(response.body)))?.mediaType ?? MediaType.ociManifest
        }
        return (response.body, mediaType, digest)
    }

    /// Whether the repository has the blob (HEAD /v2/NAME/blobs/DIGEST).
    public func blobExists(repository: String, digest: Digest, scope: String? = nil) throws(SkiffError) -> Bool {
        let action = "check blob \(digest.short) in \(registry)/\(repository)"
        var request = HTTPRequest("HEAD", "/v2/\(repository)/blobs/\(digest)")
        request.followRedirects = true
        let response = try send(request, scope: scope ?? Self.scope(repository, "pull"), action: action)
        switch response.status {
        case 200: return true
        case 404: return false
        default: throw failure(response, action: action)
        }
    }

    /// Stores `PUT /v2/NAME/manifests/TAG` with the manifest's media type; returns its digest.
    @discardableResult
    public func putManifest(repository: String, reference: String, bytes: [UInt8], mediaType: String) throws(SkiffError) -> Digest {
        let action = "push manifest \(registry)/\(repository):\(reference)"
        var request = HTTPRequest("PUT", "/v2/\(repository)/manifests/\(reference)", headers: [("Content-Type", mediaType)])
        request.body = .bytes(bytes)
        let response = try send(request, scope: Self.scope(repository, "pull,push"), action: action)
        guard response.status == 201 || response.status == 200 else { throw failure(response, action: action) }
        return Digest(of: bytes)
    }

    /// Every tag of a repository, following `Link: <...>; rel="next"` pages of `pageSize`.
    public func tags(repository: String, pageSize: Int = 1000) throws(SkiffError) -> [String] {
        struct TagList: Decodable { var tags: [String]? }
        var tags: [String] = []
        try paginate(
            "/v2/\(repository)/tags/list?n=\(pageSize)", scope: Self.scope(repository, "pull"),
            action: "list tags of \(registry)/\(repository)"
        ) {
            tags += (try? JSONDecoder().decode(TagList.self, from: Data($0)))?.tags ?? []
        }
        return tags
    }

    /// Every repository in the registry (`/v2/_catalog`), page by page.
    public func catalog(pageSize: Int = 1000) throws(SkiffError) -> [String] {
        struct Catalog: Decodable { var repositories: [String]? }
        var names: [String] = []
        try paginate("/v2/_catalog?n=\(pageSize)", scope: "registry:catalog:*", action: "list repositories of \(registry)") {
            names += (try? JSONDecoder().decode(Catalog.self, from: Data($0)))?.repositories ?? []
        }
        return names
    }

    private func paginate(_ first: String, scope: String, action: String, page: ([UInt8]) -> Void) throws(SkiffError) {
        var next: String? = first
        var pages = 0
        while let path = next {
            // Bounded, so a registry that links a page to itself cannot keep us forever.
            pages += 1
            guard pages <= 10_000 else { throw SkiffError(.setupFailed, "\(action): more than 10000 pages; stopped") }
            let response = try send(HTTPRequest("GET", path), scope: scope, action: action)
            guard response.status == 200 else { throw failure(response, action: action) }
            page(response.body)
            next = response.header("Link").flatMap(Self.nextLink)
        }
    }

    /// The target of `<URL>; rel="next"`.
    static func nextLink(_ header: String) -> String? {
        for link in header.split(separator: ",") where link.contains("rel=\"next\"") || link.contains("rel=next") {
            guard let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">"), open < close else { continue }
            return String(link[link.index(after: open)..<close])
        }
        return nil
    }

    static func scope(_ repository: String, _ actions: String) -> String { "repository:\(repository):\(actions)" }

    // MARK: - Requests, authentication, errors

    /// Sends `request` (a path, or an absolute URL from a Location header), answering one
    /// authentication challenge if the registry asks.
    func send(_ request: HTTPRequest, scope: String, action: String, progress: ((Int) -> Void)? = nil) throws(SkiffError) -> HTTPResponse {
        let base = try resolveBase(action: action)
        var request = request
        if request.url.hasPrefix("/") { request.url = base + request.url }
        let original = request.headers
        // Two tries: without (or with a cached) authorization, then after a challenge. A token
        // that expires between tries is a clear error, not a loop.
        for attempt in 0..<2 {
            request.headers = original
            if let authorization = cachedAuthorization(scope: scope) { request.headers.append(("Authorization", authorization)) }
            let response: HTTPResponse
            do {
                response = try transport.perform(request, progress: progress)
            } catch {
                throw SkiffError(.setupFailed, "\(action): cannot reach \(registry): \(error.detail.isEmpty ? "\(error)" : error.detail)")
            }
            guard response.status == 401, attempt == 0 else { return response }
            try authenticate(challenge: response, scope: scope, action: action)
        }
        fatalError("unreachable: the loop returns or throws on its second turn")
    }

    private func cachedAuthorization(scope: String) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return authorizations[scope] ?? authorizations["*"]
    }

    private func resolveBase(action: String) throws(SkiffError) -> String {
        lock.lock()
        let known = baseURL
        lock.unlock()
        if let known { return known }
        let schemes = settings.allowsPlainHTTP(registry) ? ["https", "http"] : ["https"]
        var httpsFailure: TransportError?
        for scheme in schemes {
            let base = "\(scheme)://\(host)"
            let response: HTTPResponse
            do {
                response = try transport.perform(HTTPRequest("GET", base + "/v2/"))
            } catch {
                if scheme == "https" { httpsFailure = error }
                continue
            }
            // 200, or 401 (authenticate later): a registry. Anything else on plain http after
            // https failed is most likely a TLS server refusing plain text: report the https problem.
            guard response.status == 200 || response.status == 401 else {
                if httpsFailure != nil { break }
                throw SkiffError(
                    .setupFailed, "\(action): \(base)/v2/ answered \(response.status): \(registry) does not look like a registry (API v2)")
            }
            lock.lock()
            baseURL = base
            lock.unlock()
            return base
        }
        guard let httpsFailure, httpsFailure.isTLS else {
            let detail = httpsFailure.map { $0.detail.isEmpty ? "\($0)" : $0.detail } ?? "no answer"
            throw SkiffError(.setupFailed, "\(action): cannot reach \(registry): \(detail)")
        }
        var advice = "if the registry uses its own CA, put it in \(settings.certsDirectories[0])/\(registry)/ca.crt"
        if !settings.allowsPlainHTTP(registry) {
            advice += "; if it only speaks plain http, add it to insecure-registries in \(settings.configDirectory)/daemon.json"
        }
        throw SkiffError(.setupFailed, "\(action): cannot connect to \(registry) over https: \(httpsFailure.detail); \(advice)")
    }

    /// Answers the challenge in a 401 response: fetches a bearer token from the realm (with the
    /// credentials, when known) or uses Basic auth.
    private func authenticate(challenge response: HTTPResponse, scope: String, action: String) throws(SkiffError) {
        let challenges = (response.headers["www-authenticate"] ?? []).flatMap(AuthChallenge.parse)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }), let realm = bearer.parameters["realm"] {
            guard var components = URLComponents(string: realm), components.scheme == "https" || components.scheme == "http" else {
                throw SkiffError(.setupFailed, "\(action): \(registry) sent an unusable token realm \"\(realm)\"")
            }
            var query = components.queryItems ?? []
            if let service = bearer.parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
            let scopes = (scope.isEmpty ? bearer.parameters["scope"] ?? "" : scope).split(separator: " ")
            query += scopes.map { URLQueryItem(name: "scope", value: String($0)) }
            if let credentials { query.append(URLQueryItem(name: "account", value: credentials.username)) }
            components.queryItems = query.isEmpty ? nil : query
            var request = HTTPRequest("GET", components.string ?? realm)
            if let credentials { request.headers.append(("Authorization", credentials.basicAuthorization)) }
            request.destination = .memory(limit: 1 << 20)
            let answer: HTTPResponse
            do {
                answer = try transport.perform(request)
            } catch {
                throw SkiffError(.setupFailed, "\(action): cannot get a token from \(realm): \(error)")
            }
            guard answer.status == 200 else { throw failure(answer, action: action) }
            struct Token: Decodable {
                var token: String?
                var access_token: String?
            }
            guard let token = (try? JSONDecoder().decode(Token.self, from: Data(answer.body))).flatMap({ $0.token ?? $0.access_token })
            else {
                throw SkiffError(.setupFailed, "\(action): the token server \(realm) answered without a token")
            }
            store(authorization: "Bearer \(token)", scope: scope)
        } else if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let credentials else { throw failure(response, action: action) }
            store(authorization: credentials.basicAuthorization, scope: "*")
        } else {
            throw failure(response, action: action)
        }
    }

    private func store(authorization: String, scope: String) {
        lock.lock()
        authorizations[scope] = authorization
        lock.unlock()
    }

    /// An error for a registry's non-success answer, from its error JSON
    /// (`{"errors":[{"code","message","detail"}]}`) and status, saying what to do.
    func failure(_ response: HTTPResponse, action: String) -> SkiffError {
        struct Errors: Decodable {
            struct Entry: Decodable {
                var code: String?
                var message: String?
            }
            var errors: [Entry]?
        }
        let entries = (try? JSONDecoder().decode(Errors.self, from: Data(response.body)))?.errors ?? []
        let said = entries.map { entry in
            [entry.code.map { $0.lowercased().replacingOccurrences(of: "_", with: " ") }, entry.message].compactMap { $0 }
                .joined(separator: ": ")
        }.joined(separator: "; ")
        let detail = said.isEmpty ? "" : " (\(said))"
        switch response.status {
        case 401:
            if let credentials {
                return SkiffError(
                    .invalidInput,
                    "\(action): unauthorized: \(registry) refused the credentials of \(credentials.username)\(detail): check the password, then run skiff login \(registry)"
                )
            }
            return SkiffError(.invalidInput, "\(action): unauthorized: authentication required\(detail): run skiff login \(registry)")
        case 403:
            return SkiffError(.invalidInput, "\(action): denied by \(registry)\(detail): check that your account may do this")
        case 404:
            return SkiffError(.invalidInput, "\(action): not found in \(registry)\(detail): check the name and tag")
        case 429:
            return SkiffError(.setupFailed, "\(action): too many requests to \(registry)\(detail): wait a while and try again")
        default:
            return SkiffError(.setupFailed, "\(action): \(registry) answered \(response.status)\(detail)")
        }
    }
}
