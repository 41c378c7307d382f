// Internal to src/config: a small document tree that remembers where every value came from
// (file:line:column, an override, or a JSON source), so that errors found late (in validation)
// still point at the line that caused them. Built from YAML (with `base:` includes merged) or
// from JSON; overrides are applied to it; config.cpp converts it into the structs.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gta::config::detail {

struct Value {
  enum class Kind { null, scalar, map, seq };
  Kind kind = Kind::null;
  std::string scalar;                                // kind == scalar
  std::vector<std::pair<std::string, Value>> items;  // kind == map, in document order
  std::vector<Value> elems;                          // kind == seq
  std::string where;      // where the value is: "file:line:col", "override 'k=v'", or a source name
  std::string key_where;  // where its key is (for map entries)

  // Declared here and defaulted in tree.cpp, where Value is complete: `items` holds
  // pair<string, Value>, and a pair may not be instantiated over an incomplete type. Implicit
  // members would be defined inside this class, where libstdc++ 12's std::pair checks (under
  // clang) reject it; the defaulted ones behave the same.
  Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  bool is_map() const { return kind == Kind::map; }
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void erase(const std::string& key);
  Value& set(const std::string& key, Value v);  // replaces or appends
  std::string describe() const;  // "'abc'", "a map", "a list", "nothing (null)"
};

// Loads a YAML file, following `base:` includes (relative to the including file).
Value load_yaml_file(const std::string& path);
// Parses YAML text; `source` names it in errors; `base:` paths resolve against base_dir.
Value parse_yaml_text(const std::string& text, const std::string& source, const std::string& base_dir);
// A JSON document as a tree; every value's `where` is `source`.
Value from_json(const nlohmann::json& j, const std::string& source);

// Applies one "a.b.c=value" override (value parsed as YAML). `is_known(path, is_section)`
// says whether a dotted key path exists in the schema; unknown paths are errors naming the key.
// `suggest(path)` returns a hint for an unknown path (may be empty).
struct Schema {
  // Returns: 0 unknown, 1 a leaf key, 2 a section.
  virtual int lookup(const std::vector<std::string>& path) const = 0;
  virtual std::string hint(const std::vector<std::string>& path) const = 0;
  virtual ~Schema() = default;
};
void apply_override(Value& root, const std::string& override_text, const Schema& schema);

// Called when a merge or an override sets model.attention.type: drops the attention keys that
// do not belong to the new type (declared in config.cpp).
void drop_foreign_attention_keys(Value& attention, const std::string& new_type);

// Edit distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b);
// "(did you mean 'x'?)" for the closest candidate if close enough, else "(expected one of: a, b)"
// (or "" when !list_if_far).
std::string closest_hint(const std::string& key, const std::vector<std::string>& candidates,
                         bool list_if_far = true);

}  // namespace gta::config::detail
