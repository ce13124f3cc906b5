import CCurl
import Foundation
@preconcurrency import Glibc
import SkiffKernel

/// One HTTP request of the registry protocol.
struct HTTPRequest {
    /// What is sent as the request body, never held in memory when it is a file.
    enum Body {
        case none
        case bytes([UInt8])
        /// `length` bytes of the open file `fd` from `offset` (a blob, or one chunk of it).
        case file(fd: Int32, offset: Int64, length: Int64)

        var length: Int64 {
            switch self {
            case .none: 0
            case .bytes(let bytes): Int64(bytes.count)
            case .file(_, _, let length): length
            }
        }
    }

    var method: String
    var url: String
    var headers: [(String, String)] = []
    var body: Body = .none
    /// Whether to follow redirects: blob GETs are redirected to storage (S3, a CDN) by many
    /// registries; uploads never are.
    var followRedirects = false
    /// Where a successful (2xx) response body goes: memory, up to `limit` bytes, or appended
    /// to a file (a blob download).
    var destination: Destination = .memory(limit: 16 << 20)

    enum Destination {
        case memory(limit: Int)
        /// The open file `fd`, whose first `resumeAt` bytes are already there: a 206 answer
        /// continues after them; a 200 answer starts the file over.
        case file(fd: Int32, resumeAt: Int64)
    }

    init(_ method: String, _ url: String, headers: [(String, String)] = []) {
        self.method = method
        self.url = url
        self.headers = headers
    }
}

/// A response: the status, headers (names lowercased, values in order) and, unless it went to
/// a file, the body.
struct HTTPResponse {
    var status: Int
    var headers: [String: [String]]
    var body: [UInt8]

    func header(_ name: String) -> String? { headers[name.lowercased()]?.first }
}

/// The request never got an HTTP answer: connection refused, TLS handshake failed, timed out.
struct TransportError: Error, CustomStringConvertible {
    let url: String
    let code: CURLcode
    let detail: String

    /// Whether the failure was in TLS (a certificate not trusted, a server that speaks plain HTTP).
    var isTLS: Bool {
        [CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM].contains(code)
    }

    var description: String { "\(url): \(detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)" }
}

/// HTTP over libcurl, one blocking call per request, safe to use from several threads at once
/// (each transfer takes its own easy handle from a small pool, so connections are kept alive
/// between requests to the same registry).
final class HTTPTransport: @unchecked Sendable {
    /// PEM trust roots to add for a host (`HOST:PORT` or `HOST`), e.g. from certs.d.
    let extraTrustRoots: @Sendable (_ host: String, _ port: Int?) -> [UInt8]?
    private let lock = NSLock()
    private var idleHandles: [UnsafeMutableRawPointer] = []

    /// curl_global_init(3) must run once before any handle exists and is not itself
    /// thread-safe in older libcurls, so a Swift global (initialised once, atomically) runs it.
    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    init(extraTrustRoots: @escaping @Sendable (_ host: String, _ port: Int?) -> [UInt8]? = { _, _ in nil }) {
        _ = Self.globalInit
        self.extraTrustRoots = extraTrustRoots
    }

    deinit {
        for handle in idleHandles { curl_easy_cleanup(handle) }
    }

    /// Performs `request`; `progress` hears the size of each chunk of body moved.
    func perform(_ request: HTTPRequest, progress: ((Int) -> Void)? = nil) throws(TransportError) -> HTTPResponse {
        let handle = checkOut()
        defer { checkIn(handle) }
        let transfer = Transfer(handle: handle, request: request, progress: progress)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        sk_curl_set_string(handle, CURLOPT_URL, request.url)
        // Only HTTP(S), also after a redirect: a registry must not send us to file:// or ftp://.
        sk_curl_set_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        sk_curl_set_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        sk_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)  // several threads: no SIGALRM for DNS timeouts
        sk_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT, 30)
        // A stalled transfer (under 1 byte/s for 60 s) fails instead of hanging the pull.
        sk_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        sk_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, 60)
        sk_curl_set_string(handle, CURLOPT_USERAGENT, "skiff")
        if request.followRedirects {
            // Bounded; curl drops our Authorization header when a redirect changes host
            // (CURLOPT_UNRESTRICTED_AUTH is off), so storage never sees registry credentials.
            sk_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 1)
            sk_curl_set_long(handle, CURLOPT_MAXREDIRS, 5)
        }
        sk_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        if let (host, port) = Self.hostAndPort(of: request.url), request.url.hasPrefix("https:"),
            let pem = extraTrustRoots(host, port)
        {
            pem.withUnsafeBytes { _ = sk_curl_set_ca_blob(handle, $0.baseAddress, $0.count) }
        }

        switch request.method {
        case "GET": break
        case "HEAD": sk_curl_set_long(handle, CURLOPT_NOBODY, 1)
        default:
            // Every other method sends a body (maybe empty, then Content-Length: 0, which
            // registries want on POST and PUT), read through the read callback.
            sk_curl_set_long(handle, CURLOPT_UPLOAD, 1)
            sk_curl_set_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.length))
            sk_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
            sk_curl_set_callback(handle, CURLOPT_READFUNCTION, readCallback)
            sk_curl_set_pointer(handle, CURLOPT_READDATA, context)
        }
        // "Expect:" switches off curl's 100-continue wait before large uploads.
        for (name, value) in request.headers + [("Expect", "")] {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name):" : "\(name): \(value)")
        }
        sk_curl_set_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headerList))
        sk_curl_set_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback)
        sk_curl_set_pointer(handle, CURLOPT_HEADERDATA, context)
        sk_curl_set_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback)
        sk_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)

        let code = withExtendedLifetime(transfer) { curl_easy_perform(handle) }
        sk_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, nil)
        if code != CURLE_OK {
            let detail = transfer.failure ?? String(cString: errorBuffer)
            throw TransportError(url: request.url, code: code, detail: detail)
        }
        return HTTPResponse(status: sk_curl_response_code(handle), headers: transfer.headers, body: transfer.body)
    }

    /// `host` and `port` of an http(s) URL.
    static func hostAndPort(of url: String) -> (String, Int?)? {
        guard let components = URLComponents(string: url), let host = components.host else { return nil }
        return (host, components.port)
    }

    private func checkOut() -> UnsafeMutableRawPointer {
        lock.lock()
        let handle = idleHandles.popLast()
        lock.unlock()
        if let handle {
            curl_easy_reset(handle)  // clears options, keeps the connection cache
            return handle
        }
        guard let handle = curl_easy_init() else { fatalError("curl_easy_init: out of memory") }
        return handle
    }

    private func checkIn(_ handle: UnsafeMutableRawPointer) {
        lock.lock()
        defer { lock.unlock() }
        if idleHandles.count < 8 { idleHandles.append(handle) } else { curl_easy_cleanup(handle) }
    }
}

/// The state of one transfer, reached from curl's C callbacks through their context pointer.
private final class Transfer {
    let handle: UnsafeMutableRawPointer
    let request: HTTPRequest
    let progress: ((Int) -> Void)?
    var headers: [String: [String]] = [:]
    var body: [UInt8] = []
    var sent: Int64 = 0
    /// nil until the first body bytes arrive and the status says where they go.
    var toFile: Bool?
    var failure: String?

    init(handle: UnsafeMutableRawPointer, request: HTTPRequest, progress: ((Int) -> Void)?) {
        self.handle = handle
        self.request = request
        self.progress = progress
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if toFile == nil {
            let status = sk_curl_response_code(handle)
            if case .file(let fd, let resumeAt) = request.destination, (200..<300).contains(status) {
                // 206 continues the partial file; any other success is the whole blob.
                let offset = status == 206 ? resumeAt : 0
                guard ftruncate(fd, off_t(offset)) == 0, lseek(fd, off_t(offset), SEEK_SET) >= 0 else {
                    failure = "cannot prepare the download file: \(String(cString: strerror(errno)))"
                    return false
                }
                toFile = true
            } else {
                toFile = false
            }
        }
        if toFile == true, case .file(let fd, _) = request.destination {
            var done = 0
            while done < bytes.count {
                let written = write(fd, bytes.baseAddress! + done, bytes.count - done)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else {
                    failure = "cannot write the download: \(String(cString: strerror(errno)))"
                    return false
                }
                done += written
            }
            progress?(bytes.count)
            return true
        }
        let limit: Int
        if case .memory(let bound) = request.destination { limit = bound } else { limit = 1 << 20 }  // an error body
        guard body.count + bytes.count <= limit else {
            failure = "the response is larger than \(limit) bytes"
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    func supply(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        let remaining = Int(request.body.length - sent)
        let count = min(remaining, buffer.count)
        guard count > 0 else { return 0 }
        switch request.body {
        case .none: return 0
        case .bytes(let bytes):
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(sent), byteCount: count) }
        case .file(let fd, let offset, _):
            let read = pread(fd, buffer.baseAddress, count, off_t(offset + sent))
            guard read > 0 else {
                failure = "cannot read the upload: \(read == 0 ? "the file is shorter than expected" : String(cString: strerror(errno)))"
                return Int(CURL_READFUNC_ABORT)
            }
            sent += Int64(read)
            progress?(read)
            return read
        }
        sent += Int64(count)
        return count
    }

    func header(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        // A status line starts a new response (after a redirect or a 100 Continue).
        if trimmed.hasPrefix("HTTP/") {
            headers = [:]
            return
        }
        guard let colon = trimmed.firstIndex(of: ":") else { return }
        let name = trimmed[..<colon].lowercased()
        let value = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers[name, default: []].append(value)
    }
}

private let writeCallback: sk_curl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let total = size * count
    return transfer.receive(UnsafeRawBufferPointer(start: buffer, count: total)) ? total : 0
}

private let readCallback: sk_curl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    return transfer.supply(UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

private let headerCallback: sk_curl_data_callback = { buffer, size, count, context in
    let transfer = Unmanaged<Transfer>.fromOpaque(context!).takeUnretainedValue()
    let total = size * count
    transfer.header(String(decoding: UnsafeRawBufferPointer(start: buffer, count: total), as: UTF8.self))
    return total
}
