// herald: parse the configuration, build the server, handle signals, run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "herald/common/log.hpp"
#include "herald/config/cli.hpp"
#include "herald/config/config.hpp"
#include "herald/server/server.hpp"
#include "herald/server/startup.hpp"
#include "herald/tools/import_aws.hpp"
#include "herald/version.hpp"

extern char** environ;

namespace {

constexpr const char* kImportUsage =
    "usage: herald import-aws TEMPLATE [--api LOGICAL_ID] [--output FILE] [--placeholder URL]\n"
    "\n"
    "Reads the API Gateway WebSocket API of a CloudFormation or SAM template (YAML or JSON)\n"
    "and prints the Herald configuration that does the same: routes, selection expression,\n"
    "stage, one http integration per Lambda function (at URL/<function>, URL defaulting to\n"
    "http://127.0.0.1:3000) and the $connect authorizer. What has no Herald equivalent is\n"
    "listed on stderr and in the file's first comment.\n"
    "Exit status: 0 imported, 1 the template holds no usable WebSocket API, 2 bad usage.\n";

// herald import-aws TEMPLATE [...]
int import_aws(int argc, char** argv) {
  herald::aws_import::options o;
  std::string path, output;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kImportUsage, stdout);
      return 0;
    } else if (arg == "--api" && has_value) {
      o.api = argv[++i];
    } else if (arg == "--output" && has_value) {
      output = argv[++i];
    } else if (arg == "--placeholder" && has_value) {
      o.placeholder_base = argv[++i];
      while (o.placeholder_base.ends_with('/'))
        o.placeholder_base.pop_back();
    } else if (arg.starts_with("-") || !path.empty()) {
      std::fprintf(stderr, "herald import-aws: unexpected argument %s\n%s", arg.c_str(),
                   kImportUsage);
      return 2;
    } else {
      path = arg;
    }
  }
  if (path.empty()) {
    std::fputs(kImportUsage, stderr);
    return 2;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "herald import-aws: cannot read %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::ostringstream text;
  text << in.rdbuf();
  o.source_name = path;
  herald::aws_import::result r;
  try {
    r = herald::aws_import::import_template(text.str(), o);
  } catch (const herald::aws_import::import_error& e) {
    std::fprintf(stderr, "herald import-aws: %s: %s\n", path.c_str(), e.what());
    return 1;
  }
  for (const auto& u : r.unmapped)
    std::fprintf(stderr, "herald import-aws: not imported: %s\n", u.c_str());
  if (output.empty()) {
    std::fputs(r.config_text.c_str(), stdout);
  } else {
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    out << r.config_text;
    if (!out.flush()) {
      std::fprintf(stderr, "herald import-aws: cannot write %s\n", output.c_str());
      return 1;
    }
    std::fprintf(
        stderr,
        "herald import-aws: wrote %s (API %s); check it with herald --config %s --check-config\n",
        output.c_str(), r.api.c_str(), output.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace herald;
  if (argc >= 2 && std::strcmp(argv[1], "import-aws") == 0) return import_aws(argc - 1, argv + 1);
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
