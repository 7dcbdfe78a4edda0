// Anything published on a Herald channel in Redis (other nodes, or backends using PUBLISH).
#include <string>

#include "redis/payload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto in =
      herald::redis::parse_payload(std::string_view(reinterpret_cast<const char*>(data), size));
  if (in.data_json.empty()) __builtin_trap();  // always some JSON to deliver
  return 0;
}
