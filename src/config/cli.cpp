#include "herald/config/cli.hpp"

#include <filesystem>
#include <sstream>

#include "herald/config/config.hpp"

namespace herald {

cli_options parse_cli(int argc, const char* const* argv, const char* env_config,
                      const std::string& default_path) {
  cli_options out;
  if (env_config && *env_config) {
    out.config_path = env_config;
    out.config_path_given = true;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      out.what = cli_options::action::help;
      continue;
    }
    if (arg == "-V" || arg == "--version") {
      out.what = cli_options::action::version;
      continue;
    }
    if (arg == "--check-config") {
      out.what = cli_options::action::check_config;
      continue;
    }
    if (arg == "--print-config") {
      out.what = cli_options::action::print_config;
      continue;
    }
    if (arg == "--show-secrets") {
      out.show_secrets = true;
      continue;
    }
    if (arg == "--config-reference") {
      out.what = cli_options::action::config_reference;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      throw config_error("", "unexpected argument \"" + arg + "\" (see herald --help)");
    }
    std::string name = arg.substr(2);
    std::string value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (i + 1 >= argc) throw config_error("", "--" + name + " needs a value");
      value = argv[++i];
    }
    if (name == "config" || name == "c") {
      out.config_path = value;
      out.config_path_given = true;
      continue;
    }
    out.overrides.emplace_back(std::move(name), std::move(value));
  }
  if (out.show_secrets && out.what != cli_options::action::print_config)
    throw config_error("", "--show-secrets goes with --print-config");
  if (!out.config_path_given && std::filesystem::exists(default_path))
    out.config_path = default_path;
  return out;
}

std::string usage_text() {
  std::ostringstream os;
  os << "Usage: herald [--config FILE] [--KEY VALUE ...]\n"
        "       herald --check-config | --print-config | --help | --version\n"
        "       herald import-aws TEMPLATE   (an API Gateway WebSocket API to a configuration;\n"
        "                                     herald import-aws --help)\n\n"
        "Herald is a WebSocket notification gateway. Settings come from built-in defaults,\n"
        "then the config file (JSON; default config/herald.json when it exists, or "
        "$HERALD_CONFIG),\n"
        "then HERALD_* environment variables, then flags.\n\n"
        "  --config FILE     configuration file\n"
        "  --check-config    validate the configuration and exit (0 valid, 2 invalid)\n"
        "  --print-config    print the effective configuration as JSON and exit; secrets\n"
        "                    are \"<redacted>\" (refused as values) unless --show-secrets\n"
        "  --help, --version\n\n"
        "Every key can be set as --KEY VALUE or --KEY=VALUE (dots, dashes and underscores are\n"
        "interchangeable, e.g. --log-format json) and as an environment variable:\n\n";
  for (const auto& o : describe_options()) {
    os << "  " << o.key << " (" << o.type << ")\n      " << o.description << "\n      env " << o.env
       << "\n";
  }
  os << "\nExit codes: 0 success, 1 runtime failure (e.g. address in use), 2 invalid "
        "configuration.\n";
  return os.str();
}

}  // namespace herald
