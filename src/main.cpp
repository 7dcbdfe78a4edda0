// herald: parse the configuration, build the server, handle signals, run.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "herald/common/log.hpp"
#include "herald/config/cli.hpp"
#include "herald/config/config.hpp"
#include "herald/server/server.hpp"
#include "herald/server/startup.hpp"
#include "herald/version.hpp"

extern char** environ;

int main(int argc, char** argv) {
  using namespace herald;
  cli_options opts;
  config cfg;
  try {
    opts = parse_cli(argc, argv, std::getenv("HERALD_CONFIG"));
    if (opts.what == cli_options::action::help) {
      std::fputs(usage_text().c_str(), stdout);
      return 0;
    }
    if (opts.what == cli_options::action::config_reference) {
      std::fputs(config_reference_markdown().c_str(), stdout);
      return 0;
    }
    if (opts.what == cli_options::action::version) {
      std::printf("herald %s\n", herald::version);
      return 0;
    }
    cfg = load_config({opts.config_path, {}, herald_environment(environ), opts.overrides});
    // Running, the server checks the components itself before it builds anything.
    if (opts.what != cli_options::action::run) check_components(cfg);
  } catch (const config_error& e) {
    std::fprintf(stderr, "herald: configuration error: %s\n", e.what());
    return 2;
  }
  if (opts.what == cli_options::action::check_config) {
    std::printf("configuration OK%s%s\n", opts.config_path.empty() ? "" : ": ",
                opts.config_path.c_str());
    return 0;
  }
  if (opts.what == cli_options::action::print_config) {
    std::printf("%s\n", dump_config(cfg, opts.show_secrets).c_str());
    return 0;
  }
  if (cfg.node_id.empty()) cfg.node_id = generate_node_id();

  // One log line per event, written when it happens, also when stdout is a pipe (containers,
  // systemd), where the C library would otherwise hold lines back in 4 KiB blocks.
  std::setvbuf(stdout, nullptr, _IOLBF, 1 << 16);

  logger log(cfg.log, cfg.node_id);
  try {
    server srv(cfg, log);
    log.info("herald.starting",
             {{"version", herald::version},
              {"config", opts.config_path.empty() ? "(defaults)" : opts.config_path}});
    srv.handle_signals();
    srv.run();
  } catch (const config_error& e) {
    log.critical("herald.config_error", {{"error", e.what()}});
    std::fprintf(stderr, "herald: configuration error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    log.critical("herald.start_failed", {{"error", e.what()}});
    std::fprintf(stderr, "herald: %s\n", e.what());
    return 1;
  }
  return 0;
}
