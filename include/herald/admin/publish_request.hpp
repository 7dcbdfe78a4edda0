// The body of POST /v1/publish, read and checked before anything is delivered: one
// publication (a JSON object) or a batch (an array of them). Socket-free (herald_parsers), so
// every rule is unit-tested and fuzzed without a server.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "herald/config/config.hpp"
#include "herald/delivery/publication.hpp"

namespace herald {

// A publish request that passed every check.
struct publish_request {
  bool batch = false;                     // the body was an array: answer with one item each
  std::vector<publication> publications;  // frames built, ready to deliver
};

// Why the request is refused, as the admin API answers it: HTTP status, error code
// (bad_request, invalid_channel, payload_too_large) and a message naming the item of a batch.
struct publish_refusal {
  int status = 400;
  std::string code;
  std::string message;
};

// `idempotency_header`: the Idempotency-Key header (applies to a single publication). A request
// that is refused has no effect at all: nothing of a batch is delivered.
std::variant<publish_request, publish_refusal> parse_publish_request(
    std::string_view body, std::string_view idempotency_header, const config& cfg);

}  // namespace herald
