// Reading fields of JSON documents we did not write (events, service
// responses, state markers anyone with bucket access could edit) without
// exceptions: nlohmann's value() throws when the document is not an object or
// the member has another type. These return the fallback instead.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace cloudmerge {

inline const nlohmann::json& JsonMember(const nlohmann::json& j, const char* name) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(name);
  return it == j.end() ? kNull : *it;
}

inline std::string JsonString(const nlohmann::json& j, const char* name, const std::string& fallback = "") {
  const auto& v = JsonMember(j, name);
  return v.is_string() ? v.get<std::string>() : fallback;
}

inline int64_t JsonInt(const nlohmann::json& j, const char* name, int64_t fallback) {
  const auto& v = JsonMember(j, name);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

inline double JsonNumber(const nlohmann::json& j, const char* name, double fallback) {
  const auto& v = JsonMember(j, name);
  return v.is_number() ? v.get<double>() : fallback;
}

}  // namespace cloudmerge
