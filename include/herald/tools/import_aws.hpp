// `herald import-aws TEMPLATE`: reads an API Gateway WebSocket API from a CloudFormation or SAM
// template (YAML or JSON; the short-form intrinsic tags !Ref, !Sub, !GetAtt, !Join ... are
// parsed, never evaluated) and writes the Herald configuration that does the same: the route
// selection expression, the routes, one http integration per Lambda function (a placeholder URL
// and a comment naming the function), the $connect REQUEST authorizer and the stage. What has
// no Herald equivalent (VTL templates, IAM-authorized routes, stage variables, ...) is listed,
// never dropped silently.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace herald::aws_import {

// The template cannot be read, or holds no WebSocket API (the message says which, and why).
class import_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct options {
  std::string api;  // the logical id of the WebSocket API when the template has several
  std::string source_name = "template";  // named in the generated file's first comment
  // The placeholder URL of each integration: base + "/" + the function's logical id.
  std::string placeholder_base = "http://127.0.0.1:3000";
};

struct result {
  std::string config_text;            // a Herald configuration (JSON with // comments)
  std::vector<std::string> unmapped;  // one line each: what was left out, and why
  std::string api;                    // the logical id of the API imported
};

result import_template(std::string_view text, const options& opts);

}  // namespace herald::aws_import
