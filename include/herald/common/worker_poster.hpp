// How code off a worker's thread runs something on it: post(worker index, function), in order.
#pragma once

#include <functional>

namespace herald {

using worker_poster = std::function<void(unsigned index, std::function<void()> fn)>;

}  // namespace herald
