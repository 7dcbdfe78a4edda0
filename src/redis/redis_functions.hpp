// The Redis functions Herald loads at start (FUNCTION LOAD REPLACE) so that storing a
// publication in a channel's history and publishing it happen atomically, for Herald and for
// backends alike (documented in docs/redis.md):
//
//   FCALL herald_publish 0 <channel> <data> [id] [idempotency-key] [exclude] [origin]
//                          [size] [ttl-ms]                        -> [offset, epoch, duplicate]
//   FCALL herald_history 0 <channel> <since|""|"ack"> <limit> [ttl-ms]
//                                  -> [epoch, top, acked, from, (offset, time, id, data)...]
//   FCALL herald_ack 0 <channel> <offset>                          -> acknowledged offset
//
// The settings (which channels keep history, how much, how long; the size and depth limits)
// are part of the library's code, so a backend needs to know none of them and nothing that
// empties the keyspace (FLUSHALL, eviction, DEL) can switch history off. Herald passes size and
// ttl with each of its own calls as well. It also writes them to <prefix>:history:settings for
// libraries loaded by older Herald versions during a rolling upgrade.
#pragma once

#include <string>

#include "herald/config/config.hpp"

namespace herald::redis {

// The names of Herald's Redis functions under a key prefix.
struct function_names {
  std::string library;  // "herald" for the default prefix
  std::string publish;  // "herald_publish"
  std::string history;
  std::string ack;
};

// Names for a key prefix: "herald" -> herald_publish; any other prefix gets a suffix made of
// its letters and digits ("app:prod" -> herald_publish_app_prod), so deployments sharing one
// Redis do not replace each other's library.
function_names names_for(const std::string& key_prefix);

// The library's Lua source for FUNCTION LOAD, with cfg's settings and key prefix in it.
std::string function_library(const config& cfg);

// The JSON Herald writes to <prefix>:history:settings: [pattern (Lua), size, ttl ms] rules,
// first match wins (the inbox first), and the idempotency key lifetime.
std::string history_settings(const config& cfg);

}  // namespace herald::redis
