// GET /metrics: every counter of every layer in Prometheus' text format, read from the
// per-worker counters (single writers) without stopping anyone.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

#include "admin/admin_api.hpp"
#include "herald/common/prometheus.hpp"
#include "herald/delivery/backplane.hpp"
#include "herald/version.hpp"
#include "net/worker.hpp"

namespace herald::net {

namespace {

// Process figures from /proc, for the standard process_* metrics.
struct process_stats {
  double cpu_seconds = 0;
  std::uint64_t rss_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
};

process_stats read_process_stats() {
  process_stats s;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::vector<std::string> f;
      std::string field;
      for (std::size_t i = close + 2; i <= line.size(); ++i) {
        if (i == line.size() || line[i] == ' ') {
          f.push_back(field);
          field.clear();
        } else {
          field += line[i];
        }
      }
      // f[0] is field 3 (state); utime is field 14, stime 15, vsize 23, rss 24.
      if (f.size() > 21) {
        const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
        s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
        s.virtual_bytes = std::stoull(f[20]);
        s.rss_bytes = std::stoull(f[21]) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++s.open_fds;
    }
    closedir(d);
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s.max_fds = rl.rlim_cur;
  return s;
}

}  // namespace

// ---- /metrics -----------------------------------------------------------------------------

std::string admin_api::render_metrics() const {
  prometheus_text p;
  const auto sum = [&](auto member) {
    std::uint64_t total = 0;
    for (const auto& w : ctx_.workers)
      total += (w->metrics().*member).value();
    return total;
  };
  const auto counter_family = [&](std::string_view name, std::string_view help, auto member) {
    p.family(name, "counter", help);
    p.sample(name, {}, sum(member));
  };

  p.family("herald_build_info", "gauge", "Herald's version and this node's id (always 1)");
  p.sample("herald_build_info", {{"version", herald::version}, {"node_id", ctx_.cfg.node_id}},
           std::uint64_t{1});
  p.family("herald_ready", "gauge", "1 while the node takes new connections (see /readyz)");
  p.sample("herald_ready", {}, std::uint64_t{ctx_.listening.load() && !ctx_.draining.load()});
  p.family("herald_draining", "gauge", "1 while the node is shutting down");
  p.sample("herald_draining", {}, std::uint64_t{ctx_.draining.load()});
  p.family("herald_workers", "gauge", "Worker threads (one event loop each)");
  p.sample("herald_workers", {}, static_cast<std::uint64_t>(ctx_.workers.size()));

  std::int64_t open = 0;
  for (const auto& w : ctx_.workers)
    open += w->metrics().connections_open.value();
  p.family("herald_connections", "gauge", "Open WebSocket connections");
  p.sample("herald_connections", {}, open);
  counter_family("herald_connections_opened_total", "WebSocket connections opened",
                 &worker_metrics::connections_opened);
  p.family("herald_connections_closed_total", "counter",
           "WebSocket connections closed, by close code");
  for (std::size_t i = 0; i < counted_close_codes.size() + 3; ++i) {
    std::uint64_t n = 0;
    for (const auto& w : ctx_.workers)
      n += w->metrics().closes_by_code[i].value();
    const std::string code = i < counted_close_codes.size() ? std::to_string(counted_close_codes[i])
                             : i == counted_close_codes.size()     ? "3xxx"
                             : i == counted_close_codes.size() + 1 ? "4xxx"
                                                                   : "other";
    p.sample("herald_connections_closed_total", {{"code", code}}, n);
  }
  p.family("herald_handshakes_rejected_total", "counter", "Upgrades refused, by reason");
  for (std::size_t i = 0; i < reject_reason_names.size(); ++i) {
    std::uint64_t n = 0;
    for (const auto& w : ctx_.workers)
      n += w->metrics().handshakes_rejected[i].value();
    p.sample("herald_handshakes_rejected_total", {{"reason", reject_reason_names[i]}}, n);
  }
  p.family("herald_connections_shed_total", "counter",
           "Connections answered 503 at accept and closed because the process was out of file "
           "descriptors");
  p.sample("herald_connections_shed_total", {{"reason", "descriptors"}},
           ctx_.shed_no_descriptors.load(std::memory_order_relaxed));
  counter_family("herald_token_expiry_closes_total",
                 "Connections closed (4001) because their token expired",
                 &worker_metrics::token_expiry_closes);
  counter_family("herald_drain_closes_total",
                 "Connections closed (1001) by a graceful drain, spread over shutdown.close_window",
                 &worker_metrics::drain_closes);
  counter_family("herald_messages_received_total", "WebSocket messages received from clients",
                 &worker_metrics::messages_in);
  counter_family("herald_messages_sent_total", "WebSocket messages written to clients",
                 &worker_metrics::messages_out);
  counter_family("herald_received_bytes_total", "Bytes read from WebSocket connections",
                 &worker_metrics::bytes_in);
  counter_family("herald_sent_bytes_total", "Bytes written to WebSocket connections",
                 &worker_metrics::bytes_out);
  counter_family("herald_socket_writes_total",
                 "Write calls on WebSocket connections (messages sent / writes: frames per write)",
                 &worker_metrics::socket_writes);
  counter_family("herald_protocol_errors_total", "Connections closed for violating RFC 6455",
                 &worker_metrics::protocol_errors);
  counter_family("herald_send_queue_dropped_total",
                 "Messages dropped because a client's send queue was full",
                 &worker_metrics::send_queue_dropped);
  p.family("herald_slow_consumer_closes_total", "counter",
           "Connections closed because the client did not keep up");
  p.sample("herald_slow_consumer_closes_total", {{"reason", "send_queue_overflow"}},
           sum(&worker_metrics::send_queue_overflow_closes));
  p.sample("herald_slow_consumer_closes_total", {{"reason", "write_timeout"}},
           sum(&worker_metrics::write_timeouts));
  counter_family("herald_pong_timeouts_total", "Connections dropped because a ping got no pong",
                 &worker_metrics::pong_timeouts);
  counter_family("herald_messages_throttled_total",
                 "Messages refused by the per-connection rate limit",
                 &worker_metrics::messages_throttled);
  counter_family("herald_http_requests_total", "HTTP requests read on both listeners",
                 &worker_metrics::http_requests);
  std::int64_t sse_open = 0;
  for (const auto& w : ctx_.workers)
    sse_open += w->metrics().sse_open.value();
  p.family("herald_sse_connections", "gauge",
           "Open Server-Sent Events streams (the fallback transport; counted in "
           "herald_connections too)");
  p.sample("herald_sse_connections", {}, sse_open);
  counter_family("herald_sse_posts_total",
                 "Client messages received by POST on an SSE stream's session",
                 &worker_metrics::sse_posts);
  std::int64_t compressed_open = 0;
  for (const auto& w : ctx_.workers)
    compressed_open += w->metrics().compressed_open.value();
  p.family("herald_connections_compressed", "gauge",
           "Open WebSocket connections that agreed to permessage-deflate");
  p.sample("herald_connections_compressed", {}, compressed_open);
  counter_family("herald_deflate_declined_total",
                 "Upgrades that offered permessage-deflate with parameters Herald cannot accept "
                 "(the connection went on uncompressed)",
                 &worker_metrics::deflate_declined);
  counter_family("herald_deflate_compressions_total",
                 "Messages compressed: once per message and window size, however many "
                 "recipients share it",
                 &worker_metrics::deflate_compressions);
  counter_family("herald_deflate_input_bytes_total", "Bytes of the messages compressed",
                 &worker_metrics::deflate_bytes_in);
  counter_family("herald_deflate_output_bytes_total",
                 "Bytes those messages compressed to (input / output: the ratio)",
                 &worker_metrics::deflate_bytes_out);
  counter_family("herald_messages_sent_compressed_total",
                 "Messages queued to clients compressed (the rest of herald_messages_sent_total "
                 "went uncompressed: below websocket.compression.min_bytes, not smaller "
                 "compressed, or the client did not agree)",
                 &worker_metrics::messages_out_compressed);
  counter_family("herald_messages_inflated_total",
                 "Client messages that arrived compressed and were inflated",
                 &worker_metrics::messages_inflated);

  // Routes.
  std::uint64_t forbidden = 0, rejected = 0, channel_actions = 0, refused = 0;
  std::int64_t inflight = 0;
  for (unsigned w = 0; w < router_.workers(); ++w) {
    refused += router_.metrics(w).refused.value();
    forbidden += router_.metrics(w).forbidden.value();
    rejected += router_.metrics(w).connects_rejected.value();
    channel_actions += router_.metrics(w).channel_actions.value();
    inflight += router_.metrics(w).inflight.value();
  }
  struct route_sum {
    std::uint64_t invocations = 0, failures = 0;
    std::array<std::uint64_t, latency_histogram::bounds.size() + 1> buckets{};
    double sum = 0;
  };
  std::map<std::string, route_sum> routes;
  router_.for_each_route_metrics([&](const std::string& key, unsigned, const route_metrics& m) {
    auto& r = routes[key];
    r.invocations += m.invocations.value();
    r.failures += m.failures.value();
    for (std::size_t i = 0; i < r.buckets.size(); ++i)
      r.buckets[i] += m.latency.bucket(i);
    r.sum += m.latency.sum();
  });
  p.family("herald_route_invocations_total", "counter", "Integration calls, by route");
  for (const auto& [key, r] : routes)
    p.sample("herald_route_invocations_total", {{"route", key}}, r.invocations);
  p.family("herald_route_failures_total", "counter",
           "Failed integration calls (unreachable, timeout, 5xx, bad answer), by route");
  for (const auto& [key, r] : routes)
    p.sample("herald_route_failures_total", {{"route", key}}, r.failures);
  p.family("herald_integration_duration_seconds", "histogram",
           "Integration call duration, by route");
  for (const auto& [key, r] : routes) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < r.buckets.size(); ++i) {
      cumulative += r.buckets[i];
      char le[32];
      if (i < latency_histogram::bounds.size()) {
        std::snprintf(le, sizeof le, "%g", latency_histogram::bounds[i]);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      p.sample("herald_integration_duration_seconds_bucket", {{"route", key}, {"le", le}},
               cumulative);
    }
    p.sample("herald_integration_duration_seconds_sum", {{"route", key}}, r.sum);
    p.sample("herald_integration_duration_seconds_count", {{"route", key}}, cumulative);
  }
  p.family("herald_messages_refused_total", "counter",
           "Client messages refused with a bad_request error frame, by reason");
  p.sample("herald_messages_refused_total", {{"reason", "too_deep"}}, refused);
  p.family("herald_routes_forbidden_total", "counter",
           "Messages that matched no route with no $default");
  p.sample("herald_routes_forbidden_total", {}, forbidden);
  p.family("herald_connects_rejected_total", "counter",
           "Handshakes rejected by the $connect integration");
  p.sample("herald_connects_rejected_total", {}, rejected);
  p.family("herald_integration_inflight", "gauge", "Integration calls in progress");
  p.sample("herald_integration_inflight", {}, inflight);
  p.family("herald_channel_actions_total", "counter", "subscribe and unsubscribe actions handled");
  p.sample("herald_channel_actions_total", {}, channel_actions);

  // Channels.
  std::int64_t channels = 0, subscriptions = 0;
  std::uint64_t deliveries = 0, publications = 0;
  std::uint64_t replayed = 0, resumed = 0, not_recovered = 0, skipped = 0, overflows = 0,
                resyncs = 0, gap_reads = 0, gap_closes = 0;
  for (unsigned w = 0; w < dispatcher_.workers(); ++w) {
    const auto& m = dispatcher_.metrics(w);
    channels += m.channels.value();
    subscriptions += m.subscriptions.value();
    deliveries += m.deliveries.value();
    publications += m.publications.value();
    replayed += m.replayed.value();
    resumed += m.resumed.value();
    not_recovered += m.not_recovered.value();
    skipped += m.duplicates_skipped.value();
    overflows += m.recovery_overflows.value();
    resyncs += m.resyncs.value();
    gap_reads += m.gap_reads.value();
    gap_closes += m.gap_closes.value();
  }
  p.family("herald_channels", "gauge",
           "Channels with subscribers on this node (summed over workers)");
  p.sample("herald_channels", {}, channels);
  p.family("herald_subscriptions", "gauge", "Channel subscriptions on this node");
  p.sample("herald_subscriptions", {}, subscriptions);
  p.family("herald_deliveries_total", "counter", "Published messages queued to connections");
  p.sample("herald_deliveries_total", {}, deliveries);
  p.family("herald_publications_total", "counter",
           "Channel and broadcast publications handled (per worker)");
  p.sample("herald_publications_total", {}, publications);
  p.family("herald_history_replayed_total", "counter",
           "History publications sent to subscribers resuming from an offset");
  p.sample("herald_history_replayed_total", {}, replayed);
  p.family("herald_history_resumes_total", "counter", "Subscriptions resumed from an offset");
  p.sample("herald_history_resumes_total", {{"recovered", "true"}}, resumed);
  p.sample("herald_history_resumes_total", {{"recovered", "false"}}, not_recovered);
  p.family("herald_history_seam_duplicates_total", "counter",
           "Publications a resuming subscriber already had (not sent twice)");
  p.sample("herald_history_seam_duplicates_total", {}, skipped);
  p.family("herald_history_recovery_overflows_total", "counter",
           "Subscribers closed (1013) because live traffic outran their catch-up");
  p.sample("herald_history_recovery_overflows_total", {}, overflows);
  p.family("herald_history_resyncs_sent_total", "counter",
           "resync frames sent to subscribers: the channel's history was lost under them");
  p.sample("herald_history_resyncs_sent_total", {}, resyncs);
  p.family("herald_history_subscriber_gap_reads_total", "counter",
           "History reads for a subscriber whose next live publication was past its position");
  p.sample("herald_history_subscriber_gap_reads_total", {}, gap_reads);
  p.family("herald_history_subscriber_gap_closes_total", "counter",
           "Subscribers closed (1013) because such a read could not give back what they missed");
  p.sample("herald_history_subscriber_gap_closes_total", {}, gap_closes);

  // Admin API.
  static constexpr std::array<std::string_view, static_cast<std::size_t>(api::count)> api_names{
      "aws_connections", "publish", "connections", "users", "channels",
      "metrics",         "nodes",   "console",     "other"};
  p.family("herald_admin_requests_total", "counter", "Admin API requests, by API and status");
  for (std::size_t a = 0; a < api_names.size(); ++a) {
    for (std::size_t s = 0; s <= statuses.size(); ++s) {
      const std::uint64_t n = requests_[a][s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const std::string status = s < statuses.size() ? std::to_string(statuses[s]) : "other";
      p.sample("herald_admin_requests_total", {{"api", api_names[a]}, {"status", status}}, n);
    }
  }

  backplane_.write_metrics(p);

  // The process.
  const auto ps = read_process_stats();
  p.family("process_cpu_seconds_total", "counter", "User and system CPU time");
  p.sample("process_cpu_seconds_total", {}, ps.cpu_seconds);
  p.family("process_resident_memory_bytes", "gauge", "Resident memory");
  p.sample("process_resident_memory_bytes", {}, ps.rss_bytes);
  p.family("process_virtual_memory_bytes", "gauge", "Virtual memory");
  p.sample("process_virtual_memory_bytes", {}, ps.virtual_bytes);
  p.family("process_open_fds", "gauge", "Open file descriptors");
  p.sample("process_open_fds", {}, ps.open_fds);
  p.family("process_max_fds", "gauge", "File descriptor limit");
  p.sample("process_max_fds", {}, ps.max_fds);
  p.family("process_start_time_seconds", "gauge", "Start time, seconds since the Unix epoch");
  p.sample("process_start_time_seconds", {}, static_cast<double>(started_) / 1000.0);
  return p.text();
}

}  // namespace herald::net
