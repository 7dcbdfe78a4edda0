// Command-line parsing for the herald executable.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace herald {

// What the command line asks for: an action, a config file and --key value overrides.
struct cli_options {
  enum class action { run, help, version, check_config, print_config, config_reference };
  action what = action::run;
  std::string config_path;         // resolved path; empty when no file is used
  bool config_path_given = false;  // --config or HERALD_CONFIG: a missing file is an error
  bool show_secrets = false;       // --print-config --show-secrets: secrets as they are
  std::vector<std::pair<std::string, std::string>> overrides;  // --key value
};

// Parses argv. `env_config` is $HERALD_CONFIG (may be null). `default_path` is used when it
// exists and nothing else names a file. Throws config_error on bad usage.
cli_options parse_cli(int argc, const char* const* argv, const char* env_config,
                      const std::string& default_path = "config/herald.json");

// The --help text, including every configuration key.
std::string usage_text();

}  // namespace herald
