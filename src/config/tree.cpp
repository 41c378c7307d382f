#include "config/tree.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace gta::config::detail {

namespace fs = std::filesystem;

// ---- Value ---------------------------------------------------------------------------------

Value::Value() = default;
Value::Value(const Value&) = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(const Value&) = default;
Value& Value::operator=(Value&&) noexcept = default;
Value::~Value() = default;

const Value* Value::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

Value* Value::find(const std::string& key) {
  for (auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Value::erase(const std::string& key) {
  items.erase(std::remove_if(items.begin(), items.end(), [&](const auto& kv) { return kv.first == key; }),
              items.end());
}

Value& Value::set(const std::string& key, Value v) {
  if (Value* old = find(key)) {
    *old = std::move(v);
    return *old;
  }
  items.emplace_back(key, std::move(v));
  return items.back().second;
}

std::string Value::describe() const {
  switch (kind) {
    case Kind::null: return "nothing (null)";
    case Kind::scalar: return "'" + scalar + "'";
    case Kind::map: return "a map";
    case Kind::seq: return "a list";
  }
  return "?";
}

// ---- hints ---------------------------------------------------------------------------------

size_t edit_distance(const std::string& a0, const std::string& b0) {
  // Optimal string alignment distance (adjacent transpositions count 1), case-insensitive.
  std::string a = a0, b = b0;
  for (auto& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : b) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string closest_hint(const std::string& key, const std::vector<std::string>& candidates, bool list_if_far) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(key, c);
    if (key.size() >= 3 && c.size() > key.size() && c.compare(0, key.size(), key) == 0) d = std::min<size_t>(d, 1);
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = key.size() <= 3 ? 1 : std::max<size_t>(2, key.size() / 3);
  if (!best.empty() && best_d <= limit) return fmt::format("(did you mean '{}'?)", best);
  if (!list_if_far) return "";
  std::string all;
  for (const auto& c : candidates) all += (all.empty() ? "" : ", ") + c;
  return fmt::format("(expected one of: {})", all);
}

// ---- YAML ----------------------------------------------------------------------------------

namespace {

std::string mark_str(const std::string& file, const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return file;
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

// Converts a yaml-cpp node. `label` names the source; with use_marks, positions are appended.
Value from_yaml(const YAML::Node& n, const std::string& label, bool use_marks, const std::string& path) {
  Value v;
  v.where = use_marks ? mark_str(label, n.Mark()) : label;
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      v.kind = Value::Kind::null;
      break;
    case YAML::NodeType::Scalar:
      v.kind = Value::Kind::scalar;
      v.scalar = n.Scalar();
      break;
    case YAML::NodeType::Sequence:
      v.kind = Value::Kind::seq;
      for (const auto& e : n) v.elems.push_back(from_yaml(e, label, use_marks, path + "[]"));
      break;
    case YAML::NodeType::Map:
      v.kind = Value::Kind::map;
      for (auto it = n.begin(); it != n.end(); ++it) {
        const YAML::Node k = it->first;  // copies: it-> returns a temporary proxy
        const YAML::Node val = it->second;
        std::string kw = use_marks ? mark_str(label, k.Mark()) : label;
        if (!k.IsScalar())
          fail("{}: {}: map keys must be plain names, got a {}", kw, path.empty() ? "(top level)" : path,
               k.IsMap() ? "map" : k.IsSequence() ? "list" : "null");
        const std::string key = k.Scalar();
        const std::string full = path.empty() ? key : path + "." + key;
        if (const Value* prev = v.find(key))
          fail("{}: {}: duplicate key (first given at {})", kw, full, prev->key_where);
        Value child = from_yaml(val, label, use_marks, full);
        child.key_where = kw;
        v.items.emplace_back(key, std::move(child));
      }
      break;
  }
  return v;
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}: malformed YAML: {}", mark_str(source, e.mark), e.msg);
  }
}

std::string read_file(const std::string& path, const std::string& where_prefix) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) fail("{}cannot read config file '{}': it is a directory", where_prefix, path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}cannot open config file '{}' ({})", where_prefix, path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("{}cannot read config file '{}'", where_prefix, path);
  return ss.str();
}

// Deep merge: `over` wins; maps merge key by key.
Value merge(Value base, const Value& over, const std::string& path) {
  if (over.kind == Value::Kind::null && base.is_map()) return base;
  if (!base.is_map() || !over.is_map()) return over;
  if (path == "model.attention") {
    if (const Value* t = over.find("type"); t && t->kind == Value::Kind::scalar)
      drop_foreign_attention_keys(base, t->scalar);
  }
  for (const auto& [k, v] : over.items) {
    const std::string full = path.empty() ? k : path + "." + k;
    if (Value* b = base.find(k)) {
      std::string kw = v.key_where;
      *b = merge(std::move(*b), v, full);
      b->key_where = kw;
    } else {
      base.items.emplace_back(k, v);
    }
  }
  base.where = over.where;
  return base;
}

Value parse_with_includes(const std::string& text, const std::string& source, const std::string& base_dir,
                          std::vector<std::string>& stack) {
  Value root = from_yaml(parse_yaml(text, source), source, true, "");
  if (root.kind == Value::Kind::null) {
    root.kind = Value::Kind::map;
    root.where = source;
  }
  if (!root.is_map())
    fail("{}: expected a map of sections at the top level (model:, data:, train:, ...), got {}", root.where,
         root.describe());
  const Value* b = root.find("base");
  if (!b) return root;
  if (b->kind != Value::Kind::scalar || b->scalar.empty())
    fail("{}: base: expected the path of a YAML file to include, got {}", b->where, b->describe());
  fs::path p(b->scalar);
  if (p.is_relative()) p = fs::path(base_dir) / p;
  const std::string bpath = p.lexically_normal().string();
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(p, ec);
  const std::string key = ec ? bpath : canon.string();
  if (std::find(stack.begin(), stack.end(), key) != stack.end())
    fail("{}: base: '{}' includes itself (include cycle)", b->where, bpath);
  const std::string btext = read_file(bpath, b->where + ": base: ");
  stack.push_back(key);
  Value base = parse_with_includes(btext, bpath, p.parent_path().empty() ? "." : p.parent_path().string(), stack);
  stack.pop_back();
  root.erase("base");
  return merge(std::move(base), root, "");
}

}  // namespace

Value parse_yaml_text(const std::string& text, const std::string& source, const std::string& base_dir) {
  std::vector<std::string> stack;
  return parse_with_includes(text, source, base_dir, stack);
}

Value load_yaml_file(const std::string& path) {
  const std::string text = read_file(path, "");
  std::vector<std::string> stack;
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(path, ec);
  stack.push_back(ec ? path : canon.string());
  fs::path parent = fs::path(path).parent_path();
  return parse_with_includes(text, path, parent.empty() ? "." : parent.string(), stack);
}

// ---- JSON ----------------------------------------------------------------------------------

Value from_json(const nlohmann::json& j, const std::string& source) {
  Value v;
  v.where = source;
  v.key_where = source;
  if (j.is_null()) {
    v.kind = Value::Kind::null;
  } else if (j.is_object()) {
    v.kind = Value::Kind::map;
    for (auto it = j.begin(); it != j.end(); ++it) v.items.emplace_back(it.key(), from_json(it.value(), source));
  } else if (j.is_array()) {
    v.kind = Value::Kind::seq;
    for (const auto& e : j) v.elems.push_back(from_json(e, source));
  } else if (j.is_string()) {
    v.kind = Value::Kind::scalar;
    v.scalar = j.get<std::string>();
  } else {  // number or boolean: JSON's own text (doubles print the shortest exact form)
    v.kind = Value::Kind::scalar;
    v.scalar = j.dump();
  }
  return v;
}

// ---- overrides -----------------------------------------------------------------------------

void apply_override(Value& root, const std::string& text, const Schema& schema) {
  const std::string label = fmt::format("override '{}'", text);
  const auto eq = text.find('=');
  if (eq == std::string::npos) fail("{}: expected key.path=value (e.g. train.steps=100)", label);
  auto trim = [](std::string s) {
    const char* ws = " \t\r\n";
    s.erase(0, s.find_first_not_of(ws));
    auto e = s.find_last_not_of(ws);
    s.erase(e == std::string::npos ? 0 : e + 1);
    return s;
  };
  const std::string key = trim(text.substr(0, eq));
  const std::string value_text = text.substr(eq + 1);
  std::vector<std::string> path;
  {
    size_t start = 0;
    while (true) {
      size_t dot = key.find('.', start);
      path.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  }
  for (const auto& seg : path)
    if (seg.empty()) fail("{}: '{}' is not a key path (expected names joined by dots, e.g. train.steps)", label, key);
  if (schema.lookup(path) == 0) fail("{}: unknown key {} {}", label, key, schema.hint(path));

  YAML::Node node;
  try {
    node = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    fail("{}: the value is not valid YAML ({})", label, e.msg);
  }
  Value v = from_yaml(node, label, false, key);
  v.key_where = label;

  if (root.kind == Value::Kind::null) root.kind = Value::Kind::map;
  Value* cur = &root;
  std::string prefix;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    prefix += (i ? "." : "") + path[i];
    Value* nx = cur->find(path[i]);
    if (!nx) {
      Value m;
      m.kind = Value::Kind::map;
      m.where = m.key_where = label;
      nx = &cur->set(path[i], std::move(m));
    } else if (nx->kind == Value::Kind::null) {
      nx->kind = Value::Kind::map;
    } else if (!nx->is_map()) {
      fail("{}: cannot set {}: {} is {} (at {}), not a map", label, key, prefix, nx->describe(), nx->where);
    }
    cur = nx;
  }
  if (key == "model.attention.type" && v.kind == Value::Kind::scalar) drop_foreign_attention_keys(*cur, v.scalar);
  cur->set(path.back(), std::move(v));
}

}  // namespace gta::config::detail
