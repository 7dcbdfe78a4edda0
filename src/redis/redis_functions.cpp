#include "redis/redis_functions.hpp"

#include <cctype>

#include <nlohmann/json.hpp>

#include "herald/delivery/history.hpp"

namespace herald::redis {

function_names names_for(const std::string& key_prefix) {
  std::string base = "herald";
  if (key_prefix != "herald") {
    base += '_';
    for (char c : key_prefix)
      base += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  const auto fn = [&](const char* verb) {
    return key_prefix == "herald" ? std::string("herald_") + verb
                                  : std::string("herald_") + verb + base.substr(6);
  };
  return {base, fn("publish"), fn("history"), fn("ack")};
}

namespace {

constexpr const char* kLibrary = R"LUA(
local P = __PREFIX__
-- On a Redis Cluster the names of a channel carry it as a hash tag (one slot for all of them),
-- the channel is the call's one key (FCALL f 1 <channel> ...) and publishing is SPUBLISH.
local C = __CLUSTER__
local function T(name)
  if C then return '{' .. name .. '}' end
  return name
end
-- FCALL f 1 <channel> a b... is read as FCALL f 0 <channel> a b...
local function arguments(keys, args)
  if #keys > 0 then table.insert(args, 1, keys[1]) end
  return args
end
-- The settings of the Herald node that loaded this library: which channels keep history
-- ({lua pattern, size, ttl ms}, first match wins) and the limits every node applies. They live
-- in the code, not in a key: FLUSHALL, eviction or a DEL cannot switch history off.
local S = __SETTINGS__
local function rule_for(channel)
  for _, r in ipairs(S.rules) do
    if string.find(channel, r[1]) then return r end
  end
  return nil
end
-- Nesting of a decoded JSON value (a scalar is 0), stopping as soon as it passes `limit`.
local function depth(v, limit)
  if type(v) ~= 'table' then return 0 end
  if limit <= 0 then return 1 end
  local deepest = 0
  for _, x in pairs(v) do
    local d = depth(x, limit - 1)
    if d > deepest then
      deepest = d
      if deepest >= limit then break end
    end
  end
  return deepest + 1
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- FCALL publish 0 channel data (1 channel data on a Redis Cluster) [id] [idempotency-key] [exclude] [origin] [size] [ttl-ms]
-- (Herald passes the channel's size and ttl from its own configuration; backends need not.)
local function publish(keys, args)
  args = arguments(keys, args)
  local channel, data = args[1], args[2]
  if channel == nil or channel == '' or data == nil then
    return redis.error_reply('ERR usage: FCALL ' .. __PUBLISH__ .. __NUMKEYS__ .. ' <channel> <data> [id] [idempotency-key]')
  end
  local id, key, exclude, origin = args[3] or '', args[4] or '', args[5] or '', args[6] or ''
  -- The data is JSON; anything else is sent as a JSON string. Nothing a client could not
  -- receive is stored: too large (websocket.max_message_bytes) or too deep (limits.json_max_depth).
  local ok, value = pcall(cjson.decode, data)
  local too_deep = 'ERR data nested deeper than ' .. S.max_depth .. ' levels (limits.json_max_depth)'
  if not ok and string.find(tostring(value), 'nested', 1, true) then
    return redis.error_reply(too_deep)  -- deeper than cjson itself decodes
  end
  if not ok then
    data = cjson.encode(data)
  elseif depth(value, S.max_depth) > S.max_depth then
    return redis.error_reply(too_deep)
  end
  if #data > S.max_bytes then
    return redis.error_reply('ERR data is ' .. #data .. ' bytes, over the limit of ' .. S.max_bytes .. ' (websocket.max_message_bytes)')
  end
  local ikey = P .. 'idem:' .. T(channel) .. ':' .. key
  if key ~= '' then
    local prev = redis.call('GET', ikey)
    if prev then
      local sp = string.find(prev, ' ', 1, true)
      return {tonumber(string.sub(prev, 1, sp - 1)), string.sub(prev, sp + 1), 1}
    end
  end
  local offset, epoch = 0, ''
  local r = rule_for(channel)
  if args[7] and args[7] ~= '' then
    r = {'', tonumber(args[7]), tonumber(args[8] or '')}
    if not r[2] or not r[3] or r[2] < 1 or r[3] < 1 then
      return redis.error_reply('ERR size and ttl must be positive numbers')
    end
  end
  if r then
    local stream, meta = P .. 'history:' .. T(channel), P .. 'history-meta:' .. T(channel)
    epoch = redis.call('HGET', meta, 'epoch')
    if not epoch then
      -- A new life of this channel's history: whatever was there is not continuous with it.
      local t = redis.call('TIME')
      epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))
      redis.call('DEL', stream)
      redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'acked', 0)
    end
    offset = redis.call('HINCRBY', meta, 'offset', 1)
    redis.call('XADD', stream, 'MAXLEN', r[2], offset .. '-0', 't', now_ms(), 'i', id, 'd', data)
    redis.call('PEXPIRE', stream, r[3])
    redis.call('PEXPIRE', meta, r[3])
  end
  local env = '{"origin":' .. cjson.encode(origin)
  if id ~= '' then env = env .. ',"id":' .. cjson.encode(id) end
  if exclude ~= '' then env = env .. ',"exclude":' .. cjson.encode(exclude) end
  if offset > 0 then env = env .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"' end
  env = env .. ',"data":' .. data .. '}'
  redis.call(C and 'SPUBLISH' or 'PUBLISH', P .. 'channel:' .. T(channel), env)
  if key ~= '' then
    redis.call('SET', ikey, offset .. ' ' .. epoch, 'PX', S.idem)
  end
  return {offset, epoch, 0}
end

-- FCALL history 0 channel since|''|'ack' limit [ttl-ms]
local function history(keys, args)
  args = arguments(keys, args)
  local channel, since, limit = args[1], args[2] or '', tonumber(args[3] or '100')
  if channel == nil or limit == nil then
    return redis.error_reply('ERR usage: FCALL ' .. __HISTORY__ .. __NUMKEYS__ .. ' <channel> <since> <limit>')
  end
  local m = redis.call('HMGET', P .. 'history-meta:' .. T(channel), 'epoch', 'offset', 'acked')
  if not m[1] then return {'', 0, 0, 0} end
  local top, acked = tonumber(m[2]), tonumber(m[3] or 0) or 0
  local from = 0
  if since == 'ack' then
    from = acked
  elseif since ~= '' then
    from = tonumber(since)
    if from == nil then return redis.error_reply('ERR since must be an offset') end
  end
  local out = {m[1], top, acked, from}
  if since == '' or from >= top then return out end
  local ttl = tonumber(args[4] or '')
  if not ttl then
    local r = rule_for(channel)
    if r then ttl = r[3] end
  end
  local oldest = 0
  if ttl then oldest = now_ms() - ttl end
  local entries = redis.call('XRANGE', P .. 'history:' .. T(channel), (from + 1) .. '-0', '+',
                             'COUNT', limit + 1)
  for _, e in ipairs(entries) do
    local f, t, i, d = e[2], 0, '', 'null'
    for j = 1, #f, 2 do
      if f[j] == 't' then t = tonumber(f[j + 1])
      elseif f[j] == 'i' then i = f[j + 1]
      elseif f[j] == 'd' then d = f[j + 1] end
    end
    if t >= oldest then
      out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))
      out[#out + 1] = t
      out[#out + 1] = i
      out[#out + 1] = d
    end
  end
  return out
end

-- FCALL ack 0 channel offset: raises (never lowers) the acknowledged offset.
local function ack(keys, args)
  args = arguments(keys, args)
  local off = tonumber(args[2] or '')
  if args[1] == nil or off == nil then
    return redis.error_reply('ERR usage: FCALL ' .. __ACK__ .. __NUMKEYS__ .. ' <channel> <offset>')
  end
  local meta = P .. 'history-meta:' .. T(args[1])
  local m = redis.call('HMGET', meta, 'offset', 'acked')
  if not m[1] then return 0 end
  local top, acked = tonumber(m[1]), tonumber(m[2] or 0) or 0
  if off > top then off = top end
  if off > acked then
    redis.call('HSET', meta, 'acked', off)
    acked = off
  end
  return acked
end

redis.register_function(__PUBLISH__, publish)
redis.register_function(__HISTORY__, history)
redis.register_function(__ACK__, ack)
)LUA";

std::string lua_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

void replace_all(std::string& text, const std::string& what, const std::string& with) {
  for (auto pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + with.size()))
    text.replace(pos, what.size(), with);
}

// The settings as a Lua table literal (see S in the library).
std::string settings_literal(const config& cfg) {
  std::string out = "{rules = {";
  const auto add = [&out](const history_rule& r) {
    out += "{" + lua_string(glob_to_lua_pattern(r.pattern)) + ", " + std::to_string(r.size) + ", " +
           std::to_string(r.ttl.count()) + "}, ";
  };
  if (cfg.inbox.enabled) add(cfg.inbox.rule);
  for (const auto& r : cfg.history.rules)
    add(r);
  out += "}, idem = " + std::to_string(cfg.history.idempotency_ttl.count()) +
         ", max_bytes = " + std::to_string(cfg.websocket.max_message_bytes) +
         ", max_depth = " + std::to_string(cfg.limits.json_max_depth) + "}";
  return out;
}

}  // namespace

std::string function_library(const config& cfg) {
  const std::string& key_prefix = cfg.redis.key_prefix;
  const function_names n = names_for(key_prefix);
  std::string code = "#!lua name=" + n.library + "\n" + kLibrary;
  replace_all(code, "__SETTINGS__", settings_literal(cfg));
  replace_all(code, "__PREFIX__", lua_string(key_prefix + ":"));
  const bool cluster = !cfg.redis.cluster.addresses.empty();
  replace_all(code, "__CLUSTER__", cluster ? "true" : "false");
  replace_all(code, "__NUMKEYS__", lua_string(cluster ? " 1" : " 0"));
  replace_all(code, "__PUBLISH__", lua_string(n.publish));
  replace_all(code, "__HISTORY__", lua_string(n.history));
  replace_all(code, "__ACK__", lua_string(n.ack));
  return code;
}

std::string history_settings(const config& cfg) {
  nlohmann::json rules = nlohmann::json::array();
  const auto add = [&rules](const history_rule& r) {
    rules.push_back({glob_to_lua_pattern(r.pattern), r.size, r.ttl.count()});
  };
  if (cfg.inbox.enabled) add(cfg.inbox.rule);
  for (const auto& r : cfg.history.rules)
    add(r);
  return nlohmann::json{{"rules", rules}, {"idem", cfg.history.idempotency_ttl.count()}}.dump();
}

}  // namespace herald::redis
