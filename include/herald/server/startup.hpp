// The start-up step that checks a loaded configuration against Herald's components. The
// configuration library checks shapes only (it depends on nothing else); whatever needs a part
// of Herald to be judged (listen addresses, CIDR ranges, the route selection expression, JWT
// keys, the Redis URL) is checked here, by the server before it builds anything and by
// `herald --check-config`.
#pragma once

#include "herald/config/config.hpp"

namespace herald {

// Throws config_error naming the key and where its value came from.
void check_components(const config& cfg);

}  // namespace herald
