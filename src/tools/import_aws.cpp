#include "herald/tools/import_aws.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace herald::aws_import {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kMaxDepth = 200;

// ---- reading: YAML (or JSON) into JSON, short-form tags as their long form ----

json to_json(const YAML::Node& n, int depth) {
  if (depth > kMaxDepth)
    throw import_error("the template nests deeper than " + std::to_string(kMaxDepth) + " levels");
  json v;
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      v = nullptr;
      break;
    case YAML::NodeType::Scalar:
      v = n.Scalar();
      break;
    case YAML::NodeType::Sequence:
      v = json::array();
      for (const auto& item : n)
        v.push_back(to_json(item, depth + 1));
      break;
    case YAML::NodeType::Map:
      v = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) throw import_error("a mapping key that is not a scalar");
        v[kv.first.Scalar()] = to_json(kv.second, depth + 1);
      }
      break;
  }
  // "!Ref X" is {"Ref": X}, "!GetAtt A.B" is {"Fn::GetAtt": ["A", "B"]}, any other "!Name v"
  // is {"Fn::Name": v}. "!" alone (a quoted scalar) and "?" (a plain one) are no tags.
  const std::string& tag = n.Tag();
  if (tag.size() < 2 || tag[0] != '!' || tag[1] == '!') return v;
  const std::string name = tag.substr(1);
  if (name == "Ref" || name == "Condition") return json{{name, v}};
  if (name == "GetAtt" && v.is_string()) {
    const std::string s = v.get<std::string>();
    const auto dot = s.find('.');
    return json{{"Fn::GetAtt", dot == std::string::npos
                                   ? json::array({s})
                                   : json::array({s.substr(0, dot), s.substr(dot + 1)})}};
  }
  return json{{"Fn::" + name, v}};
}

json parse_template(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw import_error("not YAML or JSON: " + std::string(e.what()));
  }
  return to_json(root, 0);
}

// ---- intrinsic functions, rendered (never evaluated): a reference stays "${Name}" ----

std::string render(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (!v.is_object() || v.size() != 1) return "${?}";
  const std::string fn = v.begin().key();
  const json& arg = v.begin().value();
  if (fn == "Ref") return "${" + render(arg) + "}";
  if (fn == "Fn::GetAtt") {
    if (arg.is_array() && arg.size() == 2)
      return "${" + render(arg[0]) + "." + render(arg[1]) + "}";
    return "${" + render(arg) + "}";
  }
  if (fn == "Fn::Sub") {
    if (arg.is_string()) return arg.get<std::string>();
    if (arg.is_array() && !arg.empty() && arg[0].is_string()) {
      std::string s = arg[0].get<std::string>();
      if (arg.size() > 1 && arg[1].is_object()) {
        for (const auto& [k, x] : arg[1].items()) {
          const std::string from = "${" + k + "}";
          const std::string to = render(x);
          for (auto pos = s.find(from); pos != std::string::npos;
               pos = s.find(from, pos + to.size()))
            s.replace(pos, from.size(), to);
        }
      }
      return s;
    }
    return "${?}";
  }
  if (fn == "Fn::Join" && arg.is_array() && arg.size() == 2 && arg[1].is_array()) {
    const std::string sep = render(arg[0]);
    std::string out;
    for (std::size_t i = 0; i < arg[1].size(); ++i)
      out += (i ? sep : "") + render(arg[1][i]);
    return out;
  }
  return "${?}";
}

// "${Name}" or "${Name.Attribute}" → "Name"; anything else → "".
std::string referenced(std::string_view s) {
  if (!s.starts_with("${") || !s.ends_with("}")) return {};
  std::string_view inner = s.substr(2, s.size() - 3);
  if (inner.find("${") != std::string_view::npos) return {};
  return std::string(inner.substr(0, inner.find('.')));
}

const json* member(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string text_of(const json& object, const char* key) {
  const json* v = member(object, key);
  return v ? render(*v) : std::string();
}

// The Lambda function an integration or authorizer URI invokes: a logical id of the template
// ("${Fn.Arn}", "${Fn}"), a parameter ("${FunctionArn}"), or the name in a literal ARN.
std::string function_of(const std::string& uri) {
  std::string target = uri;
  const auto functions = uri.find("functions/");
  if (functions != std::string::npos) {
    const auto invocations = uri.find("/invocations", functions);
    target =
        uri.substr(functions + 10, invocations == std::string::npos ? std::string::npos
                                                                    : invocations - functions - 10);
  }
  if (std::string id = referenced(target); !id.empty()) return id;
  const auto fn = target.find(":function:");
  if (fn != std::string::npos) {
    std::string name = target.substr(fn + 10);
    return name.substr(0, name.find(':'));  // without an alias or version
  }
  return {};
}

struct route_info {
  std::string logical_id;
  std::string key;
  std::string integration;  // logical id of the integration
  std::string authorization = "NONE";
  std::string authorizer;  // logical id
  bool two_way = false;
};

// A Herald integration to write (named by its key in the importer's map), with its comments.
struct integration_info {
  json spec;
  std::vector<std::string> comments;
};

class importer {
 public:
  importer(const json& doc, const options& opts) : doc_(doc), opts_(opts) {}

  result run() {
    if (member(doc_, "openapi") || member(doc_, "swagger")) {
      throw import_error(
          "this is an OpenAPI document; API Gateway exports only REST and HTTP APIs to OpenAPI, "
          "never WebSocket APIs. Give the CloudFormation or SAM template that defines the API");
    }
    const json* resources = member(doc_, "Resources");
    if (!resources || !resources->is_object())
      throw import_error("not a CloudFormation or SAM template (no \"Resources\")");
    resources_ = resources;
    pick_api();
    read_api();
    read_domain();
    read_stage();
    read_routes();
    read_route_responses();
    read_authorizers();
    map_routes();
    result r;
    r.api = api_;
    r.unmapped = unmapped_;
    r.config_text = write();
    return r;
  }

 private:
  std::vector<std::pair<std::string, const json*>> of_type(std::string_view type) const {
    std::vector<std::pair<std::string, const json*>> out;
    for (const auto& [id, res] : resources_->items()) {
      if (text_of(res, "Type") == type) out.emplace_back(id, &res);
    }
    return out;
  }

  static const json& props(const json& res) {
    static const json empty = json::object();
    const json* p = member(res, "Properties");
    return p && p->is_object() ? *p : empty;
  }

  bool ours(const json& res) const { return referenced(text_of(props(res), "ApiId")) == api_; }

  void note(std::string line) { unmapped_.push_back(std::move(line)); }

  void pick_api() {
    std::vector<std::string> websocket, others;
    for (const auto& [id, res] : of_type("AWS::ApiGatewayV2::Api")) {
      (text_of(props(*res), "ProtocolType") == "WEBSOCKET" ? websocket : others).push_back(id);
    }
    if (!opts_.api.empty()) {
      if (std::find(websocket.begin(), websocket.end(), opts_.api) == websocket.end())
        throw import_error("no WebSocket API \"" + opts_.api + "\" in the template" +
                           list_of(" (WebSocket APIs: ", websocket, ")"));
      api_ = opts_.api;
      return;
    }
    if (websocket.empty()) {
      throw import_error(
          "no WebSocket API in the template (an AWS::ApiGatewayV2::Api with ProtocolType "
          "WEBSOCKET)" +
          list_of("; it has HTTP APIs: ", others, ""));
    }
    if (websocket.size() > 1)
      throw import_error(list_of("the template has several WebSocket APIs (", websocket,
                                 "): name one with --api"));
    api_ = websocket.front();
  }

  static std::string list_of(const std::string& before, const std::vector<std::string>& items,
                             const std::string& after) {
    if (items.empty()) return {};
    std::string s = before;
    for (std::size_t i = 0; i < items.size(); ++i)
      s += (i ? ", " : "") + items[i];
    return s + after;
  }

  void read_api() {
    const json& p = props(resources_->at(api_));
    api_name_ = text_of(p, "Name");
    selection_ = text_of(p, "RouteSelectionExpression");
    if (selection_.empty()) selection_ = "$request.body.action";
    if (const std::string k = text_of(p, "ApiKeySelectionExpression"); !k.empty())
      note("API keys (ApiKeySelectionExpression " + k +
           "): Herald has no usage plans; check keys in a $connect authorizer");
    if (member(p, "Body") || member(p, "BodyS3Location"))
      note("the API's inline OpenAPI Body: only the resources of the template are read");
  }

  void read_stage() {
    auto stages = of_type("AWS::ApiGatewayV2::Stage");
    // The stage a custom domain maps to comes first: that is what clients reach.
    std::stable_partition(stages.begin(), stages.end(),
                          [this](const auto& st) { return st.first == mapped_stage_; });
    for (const auto& [id, res] : stages) {
      if (!ours(*res)) continue;
      const json& p = props(*res);
      const std::string name = text_of(p, "StageName");
      if (stage_.empty()) {
        stage_ = name;
      } else {
        note("stage " + name + " (" + id +
             "): one Herald deployment serves one stage (routing.stage " + stage_ +
             " was taken); run another with routing.stage " + name);
        continue;
      }
      if (const json* v = member(p, "StageVariables"); v && v->is_object() && !v->empty())
        note("stage variables of " + name +
             ": Herald has none; put the values in the backends' own settings");
      if (const json* v = member(p, "DefaultRouteSettings"); v && v->is_object() && !v->empty())
        note("DefaultRouteSettings of stage " + name +
             " (throttling, logging): Herald limits each connection with websocket.rate_limit.* "
             "and logs every route call");
      if (const json* v = member(p, "RouteSettings"); v && v->is_object() && !v->empty())
        note("RouteSettings of stage " + name +
             ": per-route throttling and logging are not imported");
      if (member(p, "AccessLogSettings"))
        note("AccessLogSettings of stage " + name +
             ": Herald logs connection and route events as JSON lines (log.format: json)");
    }
  }

  void read_domain() {
    // A custom domain mapped to this API is what handlers see as domainName.
    for (const auto& [id, res] : of_type("AWS::ApiGatewayV2::ApiMapping")) {
      if (!ours(*res)) continue;
      mapped_stage_ = referenced(text_of(props(*res), "Stage"));
      const std::string domain = referenced(text_of(props(*res), "DomainName"));
      const std::string literal = text_of(props(*res), "DomainName");
      if (!domain.empty() && resources_->contains(domain)) {
        const std::string name = text_of(props(resources_->at(domain)), "DomainName");
        if (referenced(name).empty() && !name.empty()) domain_ = name;
      } else if (referenced(literal).empty() && !literal.empty()) {
        domain_ = literal;
      }
    }
  }

  void read_routes() {
    for (const auto& [id, res] : of_type("AWS::ApiGatewayV2::Route")) {
      if (!ours(*res)) continue;
      const json& p = props(*res);
      route_info r;
      r.logical_id = id;
      r.key = text_of(p, "RouteKey");
      const std::string target = text_of(p, "Target");
      if (target.starts_with("integrations/")) {
        // "integrations/${Name}" (from !Ref, !Sub or !Join), or a literal name.
        r.integration = referenced(target.substr(13));
        if (r.integration.empty()) r.integration = target.substr(13);
      }
      if (const std::string a = text_of(p, "AuthorizationType"); !a.empty()) r.authorization = a;
      r.authorizer = referenced(text_of(p, "AuthorizerId"));
      if (text_of(p, "ApiKeyRequired") == "true" || text_of(p, "ApiKeyRequired") == "True")
        note("route " + r.key + " requires an API key: Herald has no usage plans");
      if (member(p, "RequestModels") || member(p, "ModelSelectionExpression"))
        note("request models of route " + r.key + ": Herald does not validate message bodies");
      if (member(p, "RequestParameters"))
        note("request parameters of route " + r.key + " are not imported");
      routes_.push_back(std::move(r));
    }
    std::sort(routes_.begin(), routes_.end(), [](const route_info& a, const route_info& b) {
      // $connect, $disconnect, $default first, then custom keys in order.
      const auto rank = [](const std::string& k) {
        return k == "$connect" ? 0 : k == "$disconnect" ? 1 : k == "$default" ? 2 : 3;
      };
      return std::pair(rank(a.key), a.key) < std::pair(rank(b.key), b.key);
    });
  }

  void read_route_responses() {
    for (const auto& [id, res] : of_type("AWS::ApiGatewayV2::RouteResponse")) {
      if (!ours(*res)) continue;
      const std::string route = referenced(text_of(props(*res), "RouteId"));
      for (auto& r : routes_) {
        if (r.logical_id == route) r.two_way = true;
      }
      if (member(props(*res), "ResponseModels"))
        note("response models of " + route + ": Herald sends the backend's body as it is");
    }
  }

  void read_authorizers() {
    for (const auto& [id, res] : of_type("AWS::ApiGatewayV2::Authorizer")) {
      if (!ours(*res)) continue;
      authorizers_[id] = &props(*res);
    }
  }

  // The Herald integration for an API Gateway integration (named by its Lambda function, so
  // routes to one function share one integration).
  std::string integration_for(const std::string& id, const std::string& route_key) {
    if (id.empty() || !resources_->contains(id) ||
        text_of(resources_->at(id), "Type") != "AWS::ApiGatewayV2::Integration") {
      note("route " + route_key + " has no integration in the template (Target " +
           (id.empty() ? "missing" : id) + "): left out");
      return {};
    }
    const json& p = props(resources_->at(id));
    const std::string type = text_of(p, "IntegrationType");
    const std::string uri = text_of(p, "IntegrationUri");
    json spec = json::object();
    std::string name;
    std::vector<std::string> comments;
    if (type == "AWS_PROXY" || type == "AWS") {
      const std::string fn = function_of(uri);
      name = fn.empty() ? id : fn;
      spec = {
          {"type", "http"}, {"url", opts_.placeholder_base + "/" + name}, {"mode", "lambda-proxy"}};
      comments.push_back(describe_function(fn, uri));
      if (type == "AWS")
        note("integration " + id + " (type AWS, route " + route_key +
             "): its request/response templates are not applied; the function gets the event as "
             "a Lambda proxy integration would");
    } else if (type == "HTTP_PROXY" || type == "HTTP") {
      name = id;
      const bool literal = (uri.starts_with("http://") || uri.starts_with("https://")) &&
                           uri.find("${") == std::string::npos;
      spec = {{"type", "http"},
              {"url", literal ? uri : opts_.placeholder_base + "/" + id},
              {"mode", "http"}};
      comments.push_back(
          id + ": " + type + " integration" + (literal ? "" : " to " + uri) +
          ". Herald POSTs the event JSON (not the raw message) and returns the answer's body");
      note("integration " + id + " (" + type + ", route " + route_key +
           "): the backend receives Herald's event JSON, not the raw message body");
    } else if (type == "MOCK") {
      name = id;
      spec = {{"type", "mock"}, {"status", 200}};
      comments.push_back(id + ": MOCK integration");
      if (member(p, "RequestTemplates"))
        note("the VTL templates of MOCK integration " + id + " (route " + route_key +
             "): a Herald mock answers a fixed status and body");
    } else {
      note("integration " + id + " of type \"" + type + "\" (route " + route_key +
           "): unknown, left out");
      return {};
    }
    if (type != "MOCK") {
      if (member(p, "RequestTemplates") || member(p, "TemplateSelectionExpression"))
        note("the VTL request templates of integration " + id + " (route " + route_key +
             "): Herald sends the API Gateway event as it is");
    }
    if (const std::string t = text_of(p, "TimeoutInMillis"); !t.empty() && spec["type"] == "http")
      spec["timeout"] = t + "ms";
    if (const std::string c = text_of(p, "ContentHandlingStrategy"); !c.empty())
      note("ContentHandlingStrategy " + c + " of integration " + id +
           ": binary frames follow websocket.binary");
    if (!integrations_.count(name)) {
      order_.push_back(name);
      integrations_[name] = {spec, comments};
    }
    return name;
  }

  std::string describe_function(const std::string& fn, const std::string& uri) const {
    if (fn.empty()) return "the Lambda function of " + uri;
    if (!resources_->contains(fn)) return fn + ": a Lambda function defined outside this template";
    const json& res = resources_->at(fn);
    const json& p = props(res);
    std::string s = fn + ": " + text_of(res, "Type");
    std::string runtime = text_of(p, "Runtime");
    std::string handler = text_of(p, "Handler");
    if (const json* g = member(doc_, "Globals"); g) {
      if (const json* f = member(*g, "Function"); f) {
        if (runtime.empty()) runtime = text_of(*f, "Runtime");
        if (handler.empty()) handler = text_of(*f, "Handler");
      }
    }
    if (const std::string code = text_of(p, "CodeUri"); !code.empty() && code != "${?}")
      s += ", code " + code;
    if (!handler.empty()) s += ", handler " + handler;
    if (!runtime.empty()) s += " (" + runtime + ")";
    return s;
  }

  void map_routes() {
    for (auto& r : routes_) {
      const std::string integration = integration_for(r.integration, r.key);
      if (integration.empty()) continue;
      json route = {{"integration", integration}};
      if (r.two_way) route["response"] = true;
      if (r.authorization == "AWS_IAM") {
        note("route " + r.key +
             " is authorized with AWS_IAM: Herald has no IAM; it is imported WITHOUT that "
             "check: put auth.jwt or a REQUEST authorizer (auth.authorizer) in front before "
             "exposing it");
        route_comments_[r.key] = "AWS_IAM on AWS: NOT checked here (see the list above)";
      } else if (r.authorization == "CUSTOM") {
        if (r.key != "$connect") {
          note("route " + r.key + " has an authorizer; on WebSocket APIs only $connect does");
        } else {
          map_authorizer(r.authorizer);
        }
      } else if (r.authorization != "NONE") {
        note("route " + r.key + " has AuthorizationType " + r.authorization + ": not imported");
      }
      routes_json_[r.key] = route;
      route_order_.push_back(r.key);
    }
  }

  void map_authorizer(const std::string& id) {
    const auto it = authorizers_.find(id);
    if (it == authorizers_.end()) {
      note("the $connect authorizer " + (id.empty() ? std::string("(no AuthorizerId)") : id) +
           " is not in the template: connections are NOT authorized");
      return;
    }
    const json& p = *it->second;
    const std::string type = text_of(p, "AuthorizerType");
    if (type != "REQUEST") {
      note("authorizer " + id + " of type " + type +
           ": only REQUEST authorizers are imported; "
           "connections are NOT authorized (auth.jwt checks JWTs itself)");
      return;
    }
    const std::string uri = text_of(p, "AuthorizerUri");
    const std::string fn = function_of(uri);
    const std::string name = fn.empty() ? id : fn;
    if (!integrations_.count(name)) {
      order_.push_back(name);
      integrations_[name] = {
          {{"type", "http"},
           {"url", opts_.placeholder_base + "/" + name},
           {"mode", "lambda-proxy"}},
          {describe_function(fn, uri) + "; the $connect REQUEST authorizer " + id}};
    }
    authorizer_ = {{"integration", name}};
    ordered_json sources = ordered_json::array();
    if (const json* s = member(p, "IdentitySource"); s) {
      const json list = s->is_array() ? *s : json::array({*s});
      for (const auto& item : list) {
        const std::string source = render(item);
        if (source.starts_with("route.request.header.") ||
            source.starts_with("route.request.querystring.")) {
          sources.push_back(source);
        } else {
          note("identity source " + source + " of authorizer " + id +
               ": Herald reads route.request.header.* and route.request.querystring.*");
        }
      }
    }
    authorizer_["identity_sources"] = sources;
  }

  std::string write() const {
    std::string out;
    out += "// Herald configuration generated by `herald import-aws " + opts_.source_name + "`\n";
    out += "// from the WebSocket API " + api_ +
           (api_name_.empty() ? "" : " (\"" + api_name_ + "\")") + ".\n";
    out +=
        "// Each http integration stands for a Lambda function: serve its handler over HTTP (a "
        "small\n// server that passes the request body to it as the event and writes its return "
        "value as\n// JSON; docs/routing.md, \"Worked example\") and put its URL in place of the "
        "placeholder.\n";
    if (!unmapped_.empty()) {
      out += "// Not imported (also printed on stderr):\n";
      for (const auto& u : unmapped_)
        out += "//   - " + u + "\n";
    }
    out += "{\n";
    ordered_json routing = ordered_json::object();
    routing["selection_expression"] = selection_;
    if (!stage_.empty()) routing["stage"] = stage_;
    routing["api_id"] = api_id();
    if (!domain_.empty()) routing["domain_name"] = domain_;
    out += "  \"routing\": " + routing.dump() + ",\n";
    out += "  \"integrations\": {";
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const auto& in = integrations_.at(order_[i]);
      out += i ? ",\n" : "\n";
      for (const auto& c : in.comments)
        out += "    // " + c + "\n";
      out += "    " + json(order_[i]).dump() + ": " + ordered(in.spec).dump();
    }
    out += order_.empty() ? "},\n" : "\n  },\n";
    out += "  \"routes\": {";
    for (std::size_t i = 0; i < route_order_.size(); ++i) {
      const auto& key = route_order_[i];
      out += i ? ",\n" : "\n";
      if (const auto c = route_comments_.find(key); c != route_comments_.end())
        out += "    // " + c->second + "\n";
      out += "    " + json(key).dump() + ": " + routes_json_.at(key).dump();
    }
    out += route_order_.empty() ? "}" : "\n  }";
    if (!authorizer_.is_null())
      out += ",\n  \"auth\": {\"authorizer\": " + authorizer_.dump() + "}";
    out += "\n}\n";
    return out;
  }

  // type, url, mode first, as people write them.
  static ordered_json ordered(const json& spec) {
    ordered_json o = ordered_json::object();
    for (const char* k : {"type", "url", "mode", "status", "timeout"}) {
      if (spec.contains(k)) o[k] = spec.at(k);
    }
    return o;
  }

  // routing.api_id: the API's logical id, as the letters and digits API Gateway uses.
  std::string api_id() const {
    std::string id;
    for (const char c : api_) {
      if (std::isalnum(static_cast<unsigned char>(c)))
        id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return id.empty() ? "herald" : id;
  }

  const json& doc_;
  const options& opts_;
  const json* resources_ = nullptr;
  std::string api_, api_name_, selection_, stage_, domain_, mapped_stage_;
  std::vector<route_info> routes_;
  std::map<std::string, const json*> authorizers_;
  std::map<std::string, integration_info> integrations_;
  std::vector<std::string> order_;
  std::map<std::string, json> routes_json_;
  std::map<std::string, std::string> route_comments_;
  std::vector<std::string> route_order_;
  ordered_json authorizer_;
  std::vector<std::string> unmapped_;
};

}  // namespace

result import_template(std::string_view text, const options& opts) {
  const json doc = parse_template(text);
  return importer(doc, opts).run();
}

}  // namespace herald::aws_import
