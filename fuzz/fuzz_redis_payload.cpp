// Anything published on a Herald channel in Redis (other nodes, or backends using PUBLISH), and
// on the channels nodes tell one another things (control, node:<id>); and Redis Cluster's
// MOVED / ASK error replies and key slots.
#include <string>

#include "herald/common/json_input.hpp"
#include "herald/redis/cluster_keys.hpp"
#include "herald/ws/frame.hpp"
#include "redis/payload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto in = herald::redis::parse_payload(
      std::string_view(reinterpret_cast<const char*>(data), size), herald::default_json_max_depth);
  // Always some JSON to deliver, or a reason it was refused.
  if (in.data_json.empty() == in.refused.empty()) __builtin_trap();
  const auto op = herald::redis::parse_node_op(
      std::string_view(reinterpret_cast<const char*>(data), size), herald::default_json_max_depth);
  if (!herald::ws::is_valid_wire_close_code(op.code)) __builtin_trap();
  // Cluster redirections and slots (error replies come from any node).
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (herald::redis::key_slot(text) >= herald::redis::cluster_slots) __builtin_trap();
  if (const auto r = herald::redis::parse_redirect(text, "h"))
    if (r->slot >= herald::redis::cluster_slots || r->port <= 0 || r->port > 65535)
      __builtin_trap();
  return 0;
}
