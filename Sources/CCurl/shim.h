// libcurl for Swift, used by SkiffImage's registry client. curl_easy_setopt and
// curl_easy_getinfo are variadic, which Swift cannot call, so each argument type gets a typed
// wrapper here. libcurl rather than URLSession: swift-corelibs-foundation sets no CA file on
// Linux (it reads URLSessionCertificateAuthorityInfoFile only on Android, EasyHandle.swift
// setCARootBundlePath), so a registry's own CA could not be trusted through it.
#include <curl/curl.h>

typedef size_t (*sk_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);

static inline CURLcode sk_curl_set_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sk_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sk_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sk_curl_set_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sk_curl_set_callback(CURL *handle, CURLoption option, sk_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// PEM bytes as the extra trust roots of a handle (CURLOPT_CAINFO_BLOB, curl >= 7.77); curl
/// copies them, so the caller's buffer may go away afterwards.
static inline CURLcode sk_curl_set_ca_blob(CURL *handle, const void *pem, size_t length) {
    struct curl_blob blob = {(void *)pem, length, CURL_BLOB_COPY};
    return curl_easy_setopt(handle, CURLOPT_CAINFO_BLOB, &blob);
}

static inline long sk_curl_response_code(CURL *handle) {
    long code = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
    return code;
}
