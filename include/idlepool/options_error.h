// The message of a Boost.Program_options error, rendered without Boost's what().
//
// Boost (1.74 at least) fills an error's "%name%" placeholders by replacing each one until none is left
// (error_with_option_name::replace_token): a value that contains its own placeholder, such as a configuration line
// "%invalid_line%" or a setting "x = %value%", is replaced forever while the message grows without bound. The
// configuration file and the command lines are written by people, not by us: describe() fills each placeholder of
// the template once, from left to right, and leaves what the values contain alone.
#pragma once

#include <boost/program_options/errors.hpp>
#include <iterator>
#include <map>
#include <set>
#include <string>

namespace idlepool {

namespace detail {
// Reads the substitutions an error carries. Pointers to protected members taken through a derived class may be
// applied to the base (the class is never instantiated).
struct OptionsErrorFields : boost::program_options::error_with_option_name {
  static constexpr auto kSubstitutions = &OptionsErrorFields::m_substitutions;
  static constexpr auto kDefaults = &OptionsErrorFields::m_substitution_defaults;
  static constexpr auto kPrefix = &OptionsErrorFields::get_canonical_option_prefix;
};
}  // namespace detail

inline std::string describe(const boost::program_options::error& e) {
  namespace po = boost::program_options;
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
  if (named == nullptr) return e.what();  // a fixed text, or one made once when it was thrown
  std::map<std::string, std::string> values = named->*detail::OptionsErrorFields::kSubstitutions;
  values["canonical_option"] = named->get_option_name();
  values["prefix"] = (named->*detail::OptionsErrorFields::kPrefix)();

  std::string tmpl = named->m_error_template;
  if (const auto* ambiguous = dynamic_cast<const po::ambiguous_option*>(named); ambiguous != nullptr) {
    // As Boost words it: "... and matches 'a', 'b', and 'c'".
    const auto& all = ambiguous->alternatives();
    const std::set<std::string> distinct(all.begin(), all.end());
    tmpl += " and matches ";
    for (auto it = distinct.begin(); distinct.size() > 1 && std::next(it) != distinct.end(); ++it)
      tmpl += "'%prefix%" + *it + "', ";
    if (distinct.size() > 1) tmpl += "and ";
    if (all.size() > 1 && distinct.size() == 1) tmpl += "different versions of ";
    if (!distinct.empty()) tmpl += "'%prefix%" + *distinct.rbegin() + "'";
  }
  // Boost's rule: where a value is missing, a phrase of the template gives way to a default ("option '%x%'" ->
  // "option"). Both come from the template, never from the values.
  for (const auto& [name, from_to] : named->*detail::OptionsErrorFields::kDefaults) {
    if (!values[name].empty()) continue;
    for (auto pos = tmpl.find(from_to.first); pos != std::string::npos;
         pos = tmpl.find(from_to.first, pos + from_to.second.size()))
      tmpl.replace(pos, from_to.first.size(), from_to.second);
  }
  std::string out;
  for (std::size_t i = 0; i < tmpl.size();) {
    const std::size_t end = tmpl[i] == '%' ? tmpl.find('%', i + 1) : std::string::npos;
    const auto value = end == std::string::npos ? values.end() : values.find(tmpl.substr(i + 1, end - i - 1));
    if (value == values.end()) {
      out += tmpl[i++];
      continue;
    }
    out += value->second;
    i = end + 1;
  }
  return out;
}

}  // namespace idlepool
