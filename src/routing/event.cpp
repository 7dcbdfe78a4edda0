#include "herald/routing/event.hpp"

#include <ctime>

#include <nlohmann/json.hpp>

#include "herald/common/text.hpp"

namespace herald {

using nlohmann::json;

std::string_view to_string(event_type t) {
  switch (t) {
    case event_type::connect:
      return "CONNECT";
    case event_type::message:
      return "MESSAGE";
    case event_type::disconnect:
      return "DISCONNECT";
    case event_type::subscribe:
      return "SUBSCRIBE";
    case event_type::publish:
      return "PUBLISH";
  }
  return "MESSAGE";
}

std::string clf_time(system_time_ms t) {
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string iso8601(system_time_ms t) {
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(t % 1000));
  return buf;
}

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> url_decode_strict(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return std::nullopt;
    out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
    i += 2;
  }
  return out;
}

std::string url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

namespace {

// {"name": last value} and {"name": [all values]}, as API Gateway builds them.
void add_pairs(json& event, const char* single, const char* multi, const string_pairs& pairs) {
  json one = json::object();
  json many = json::object();
  for (const auto& [k, v] : pairs) {
    one[k] = v;
    many[k].push_back(v);
  }
  event[single] = std::move(one);
  event[multi] = std::move(many);
}

}  // namespace

string_pairs query_pairs(std::string_view target) {
  string_pairs out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (!item.empty()) {
      const auto eq = item.find('=');
      out.emplace_back(url_decode(item.substr(0, eq)), eq == std::string_view::npos
                                                           ? std::string()
                                                           : url_decode(item.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

void add_forwarding_headers(string_pairs& headers, const forwarding& f) {
  std::string proto = f.tls ? "https" : "http";
  std::string port = std::to_string(f.local_port);
  bool proto_kept = false, port_kept = false, has_trace = false;
  string_pairs out;
  out.reserve(headers.size() + 4);
  for (auto& [name, value] : headers) {
    if (iequals(name, "X-Forwarded-Proto") || iequals(name, "X-Forwarded-Port")) {
      const bool is_proto = iequals(name, "X-Forwarded-Proto");
      bool& kept = is_proto ? proto_kept : port_kept;
      if (f.from_trusted_proxy && !kept && !value.empty()) {
        // A proxy that forwards hop after hop lists them; the first is the client's.
        const auto comma = value.find(',');
        (is_proto ? proto : port) = std::string(trim(std::string_view(value).substr(0, comma)));
        kept = true;
      }
      continue;
    }
    if (iequals(name, "X-Forwarded-For")) continue;
    if (iequals(name, "X-Amzn-Trace-Id")) has_trace = true;
    out.emplace_back(std::move(name), std::move(value));
  }
  if (!has_trace) out.emplace_back("X-Amzn-Trace-Id", std::string(f.trace_id));
  out.emplace_back("X-Forwarded-For", std::string(f.client_ip));
  out.emplace_back("X-Forwarded-Port", std::move(port));
  out.emplace_back("X-Forwarded-Proto", std::move(proto));
  headers = std::move(out);
}

std::string make_trace_id(system_time_ms now, const unsigned char (&random)[12]) {
  static constexpr char digits[] = "0123456789abcdef";
  char time_hex[9];
  std::snprintf(time_hex, sizeof time_hex, "%08llx",
                static_cast<unsigned long long>(now / 1000) & 0xffffffffull);
  std::string out = "Root=1-";
  out += time_hex;
  out += '-';
  for (const unsigned char b : random) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

namespace {

// Hop-by-hop headers of the upgrade: a REQUEST authorizer sees them, the $connect integration
// does not (as on API Gateway).
bool hop_by_hop(std::string_view name) {
  return iequals(name, "Connection") || iequals(name, "Upgrade");
}

}  // namespace

std::string build_event(const event_input& in) {
  const connection_info& conn = *in.conn;
  const std::string domain(
      in.routing->domain_name.empty() ? conn.host() : std::string_view(in.routing->domain_name));
  json ctx = {
      {"routeKey", in.route_key},
      {"eventType", to_string(in.type)},
      {"extendedRequestId", in.request_id},
      {"requestTime", clf_time(in.request_time)},
      {"messageDirection", "IN"},
      {"stage", in.routing->stage},
      {"connectedAt", conn.connected_at},
      {"requestTimeEpoch", in.request_time},
      {"identity", {{"sourceIp", conn.source_ip()}}},
      {"requestId", in.request_id},
      {"domainName", domain},
      {"connectionId", conn.id.view()},
      {"apiId", in.routing->api_id},
  };
  // As AWS since 2024: userAgent only when the handshake carried one.
  if (!conn.user_agent().empty()) ctx["identity"]["userAgent"] = conn.user_agent();
  if (conn.authorizer) {
    json auth = json::object();
    for (const auto& [k, v] : *conn.authorizer)
      auth[k] = v;
    ctx["authorizer"] = std::move(auth);
  }
  json event = json::object();
  switch (in.type) {
    case event_type::connect: {
      if (in.request && !in.method_arn.empty()) {
        add_pairs(event, "headers", "multiValueHeaders", in.request->headers);
      } else if (in.request) {
        string_pairs headers;
        headers.reserve(in.request->headers.size());
        for (const auto& h : in.request->headers) {
          if (!hop_by_hop(h.first)) headers.push_back(h);
        }
        add_pairs(event, "headers", "multiValueHeaders", headers);
      }
      if (in.request) {
        const auto query = query_pairs(in.request->target);
        if (!query.empty())
          add_pairs(event, "queryStringParameters", "multiValueQueryStringParameters", query);
      }
      if (!in.method_arn.empty()) {
        event["type"] = "REQUEST";
        event["methodArn"] = in.method_arn;
        event["stageVariables"] = json::object();
      }
      break;
    }
    case event_type::message:
      ctx["messageId"] = in.message_id;
      event["body"] = in.body;
      break;
    case event_type::disconnect: {
      ctx["disconnectStatusCode"] = in.disconnect_code;
      ctx["disconnectReason"] = in.disconnect_reason;
      // API Gateway sends a small synthetic header set on $disconnect, not the handshake's.
      add_pairs(event, "headers", "multiValueHeaders",
                {{"Host", domain},
                 {"x-api-key", ""},
                 {"X-Forwarded-For", std::string(conn.source_ip())},
                 {"x-restapi", ""}});
      break;
    }
    case event_type::subscribe:
      event["channel"] = in.channel;
      break;
    case event_type::publish:
      event["channel"] = in.channel;
      event["body"] = in.body;
      break;
  }
  event["requestContext"] = std::move(ctx);
  event["isBase64Encoded"] = in.body_base64;
  return event.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace herald
