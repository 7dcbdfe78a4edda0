#include "herald/delivery/publication.hpp"

#include "herald/protocol/client_frames.hpp"

namespace herald {

std::string_view to_string(target_kind k) {
  switch (k) {
    case target_kind::connection:
      return "connection";
    case target_kind::user:
      return "user";
    case target_kind::channel:
      return "channel";
    case target_kind::broadcast:
      return "broadcast";
  }
  return "channel";
}

publication publication::message(target_kind kind, std::string target, std::string data_json,
                                 std::string id) {
  publication p;
  p.kind = kind;
  p.payload = make_message(protocol::message(
      kind == target_kind::channel ? display_channel(target) : std::string_view(), data_json, id));
  p.target = std::move(target);
  p.data_json = std::move(data_json);
  p.id = std::move(id);
  return p;
}

publication publication::stored(std::string channel, std::string data_json, std::string id,
                                std::uint64_t offset, std::string epoch) {
  publication p;
  p.kind = target_kind::channel;
  p.payload =
      make_message(protocol::message(display_channel(channel), data_json, id, offset, epoch));
  p.target = std::move(channel);
  p.data_json = std::move(data_json);
  p.id = std::move(id);
  p.offset = offset;
  p.epoch = std::move(epoch);
  return p;
}

publication publication::presence_event(std::string channel, std::string event,
                                        std::string info_json) {
  publication p;
  p.kind = target_kind::channel;
  p.payload = make_message(protocol::presence_change(event, channel, info_json));
  p.target = std::move(channel);
  p.data_json = std::move(info_json);
  p.event = std::move(event);
  return p;
}

publication publication::resync(std::string channel, std::string epoch, std::uint64_t offset,
                                std::string_view reason) {
  publication p;
  p.kind = target_kind::channel;
  p.payload = make_message(protocol::resync(display_channel(channel), epoch, offset, reason));
  p.target = std::move(channel);
  p.offset = offset;
  p.epoch = std::move(epoch);
  p.event = "resync";
  return p;
}

}  // namespace herald
