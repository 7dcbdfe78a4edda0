#include "herald/delivery/wire_message.hpp"

#include "herald/ws/deflate.hpp"

namespace herald {

struct wire_message::variant {
  int bits = 0;
  std::string data;
  const variant* next = nullptr;
};

namespace {

constexpr std::uintptr_t busy = 1;

template <class V>
const V* find_variant(std::uintptr_t head, int bits) {
  for (auto* v = reinterpret_cast<const V*>(head & ~busy); v != nullptr; v = v->next) {
    if (v->bits == bits) return v;
  }
  return nullptr;
}

}  // namespace

wire_message::~wire_message() {
  auto* v = reinterpret_cast<const variant*>(variants_.load(std::memory_order_acquire) & ~busy);
  while (v != nullptr) {
    const variant* next = v->next;
    delete v;
    v = next;
  }
}

std::string_view wire_message::deflated(int window_bits, int level, bool& made) const {
  made = false;
  std::uintptr_t head = variants_.load(std::memory_order_acquire);
  if (const auto* v = find_variant<variant>(head, window_bits)) return v->data;
  // Become the one that adds it, or wait for whoever is adding one.
  for (;;) {
    head = variants_.load(std::memory_order_acquire);
    if ((head & busy) != 0) {
      variants_.wait(head, std::memory_order_acquire);
      continue;
    }
    if (const auto* v = find_variant<variant>(head, window_bits)) return v->data;
    if (variants_.compare_exchange_weak(head, head | busy, std::memory_order_acq_rel)) break;
  }
  const variant* added = nullptr;
  try {
    added = new variant{window_bits, ws::deflate_message(bytes_, window_bits, level),
                        reinterpret_cast<const variant*>(head)};
  } catch (...) {
    variants_.store(head, std::memory_order_release);
    variants_.notify_all();
    throw;
  }
  variants_.store(reinterpret_cast<std::uintptr_t>(added), std::memory_order_release);
  variants_.notify_all();
  made = !added->data.empty();
  return added->data;
}

}  // namespace herald
