#include "herald/auth/sigv4.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "herald/common/text.hpp"
#include "herald/routing/event.hpp"

namespace herald {
namespace {

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Header value as SigV4 canonicalises it: trimmed, inner runs of spaces collapsed.
std::string canonical_value(std::string_view v) {
  v = trim(v);
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// "20150830T123600Z" -> epoch milliseconds; -1 if malformed.
std::int64_t parse_amz_date(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return -1;
  const auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
      tm.tm_sec > 60) {
    return -1;
  }
  return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view header(const string_pairs& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return hex(digest, sizeof digest);
}

std::string aws_uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xf];
    }
  }
  return out;
}

std::string sigv4_canonical_request(const sigv4_request& req, std::string_view signed_headers,
                                    std::string_view payload_hash) {
  const auto q = req.target.find('?');
  const std::string_view path = req.target.substr(0, q);
  std::string_view query =
      q == std::string_view::npos ? std::string_view() : req.target.substr(q + 1);

  // The path as sent is encoded once more (every service but S3 signs it double-encoded).
  std::string out(req.method);
  out += '\n';
  out += aws_uri_encode(path.empty() ? "/" : path, true);
  out += '\n';

  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (!item.empty()) {
      const auto eq = item.find('=');
      params.emplace_back(aws_uri_encode(url_decode(item.substr(0, eq)), false),
                          eq == std::string_view::npos
                              ? std::string()
                              : aws_uri_encode(url_decode(item.substr(eq + 1)), false));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  std::sort(params.begin(), params.end());
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i) out += '&';
    out += params[i].first + "=" + params[i].second;
  }
  out += '\n';

  std::string_view names = signed_headers;
  while (!names.empty()) {
    const auto semi = names.find(';');
    const std::string_view name = names.substr(0, semi);
    std::string joined;
    for (const auto& [k, v] : *req.headers) {
      if (!iequals(k, name)) continue;
      if (!joined.empty()) joined += ',';
      joined += canonical_value(v);
    }
    out += std::string(name) + ":" + joined + "\n";
    if (semi == std::string_view::npos) break;
    names.remove_prefix(semi + 1);
  }
  out += '\n';
  out += signed_headers;
  out += '\n';
  out += payload_hash;
  return out;
}

std::string sigv4_signature(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service, std::string_view string_to_sign) {
  const std::string k_date = hmac("AWS4" + std::string(secret), date);
  const std::string k_region = hmac(k_date, region);
  const std::string k_service = hmac(k_region, service);
  const std::string k_signing = hmac(k_service, "aws4_request");
  const std::string sig = hmac(k_signing, string_to_sign);
  return hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
}

sigv4_outcome verify_sigv4(const sigv4_request& req, const sigv4_key& key, system_time_ms now) {
  const std::string_view auth = trim(header(*req.headers, "Authorization"));
  constexpr std::string_view scheme = "AWS4-HMAC-SHA256";
  if (!auth.starts_with(scheme))
    return {sigv4_status::missing, "no AWS4-HMAC-SHA256 Authorization header"};

  // Credential=AKID/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=hex
  std::map<std::string, std::string, std::less<>> parts;
  std::string_view rest = auth.substr(scheme.size());
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    const auto eq = item.find('=');
    if (eq != std::string_view::npos)
      parts[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  const auto credential = parts.find("Credential");
  const auto signed_headers = parts.find("SignedHeaders");
  const auto signature = parts.find("Signature");
  if (credential == parts.end() || signed_headers == parts.end() || signature == parts.end()) {
    return {sigv4_status::malformed, "Authorization lacks Credential, SignedHeaders or Signature"};
  }
  std::vector<std::string> scope;
  {
    std::string_view c = credential->second;
    while (true) {
      const auto slash = c.find('/');
      scope.emplace_back(c.substr(0, slash));
      if (slash == std::string_view::npos) break;
      c.remove_prefix(slash + 1);
    }
  }
  if (scope.size() != 5 || scope[4] != "aws4_request")
    return {sigv4_status::malformed, "bad credential scope"};
  if (!equal_constant_time(scope[0], key.access_key_id))
    return {sigv4_status::unknown_key, "unknown access key id"};
  if (scope[3] != key.service) return {sigv4_status::wrong_scope, "service must be " + key.service};
  if (!key.region.empty() && scope[2] != key.region)
    return {sigv4_status::wrong_scope, "region must be " + key.region};

  const std::string_view amz_date = trim(header(*req.headers, "X-Amz-Date"));
  const std::int64_t signed_at = parse_amz_date(amz_date);
  if (signed_at < 0) return {sigv4_status::malformed, "missing or malformed X-Amz-Date"};
  if (scope[1] != amz_date.substr(0, 8))
    return {sigv4_status::wrong_scope, "credential date differs from X-Amz-Date"};
  const auto skew = std::chrono::milliseconds(now > signed_at ? now - signed_at : signed_at - now);
  if (skew > key.max_skew)
    return {sigv4_status::expired, "request time is outside the allowed clock skew"};

  const std::string names = lower(signed_headers->second);
  if ((";" + names + ";").find(";host;") == std::string::npos) {
    return {sigv4_status::malformed, "the host header must be signed"};
  }
  std::string payload_hash = sha256_hex(req.body);
  const std::string_view claimed = trim(header(*req.headers, "X-Amz-Content-Sha256"));
  if (!claimed.empty() && claimed != payload_hash) {
    return {sigv4_status::bad_payload, "X-Amz-Content-Sha256 does not match the body"};
  }

  const std::string canonical = sigv4_canonical_request(req, names, payload_hash);
  const std::string scope_text = scope[1] + "/" + scope[2] + "/" + scope[3] + "/aws4_request";
  // Appended piece by piece: GCC 12 warns falsely (-Warray-bounds) on the chained operator+.
  std::string to_sign(scheme);
  to_sign += '\n';
  to_sign += amz_date;
  to_sign += '\n';
  to_sign += scope_text;
  to_sign += '\n';
  to_sign += sha256_hex(canonical);
  const std::string expected =
      sigv4_signature(key.secret_access_key, scope[1], scope[2], scope[3], to_sign);
  if (!equal_constant_time(expected, lower(signature->second))) {
    return {sigv4_status::bad_signature, "signature does not match"};
  }
  return {sigv4_status::ok, {}};
}

}  // namespace herald
