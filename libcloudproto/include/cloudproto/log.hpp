// One log grammar for the whole project (STYLE.md):
//   <time> <level> <id> <component> <event> key=value ...
// written to stderr, one write per line so that lines never interleave.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cloudproto::log {

enum class Level { trace, debug, info, warn, error };

void set_level(Level level);
Level level();
inline bool enabled(Level l) { return l >= level(); }

// "trace" .. "error"; nullopt-like false when the name is unknown.
bool parse_level(std::string_view name, Level& out);

void write(Level level, std::string_view id, std::string_view component,
           std::string_view event, std::string_view fields);

// A value fit for key=value: bytes from a peer are escaped (\xNN),
// capped at `max_bytes`, and quoted when they hold spaces or quotes.
std::string value(std::string_view bytes, std::size_t max_bytes = 160);

template <typename... Args>
void emit(Level l, std::string_view id, std::string_view component,
          std::string_view event, fmt::format_string<Args...> fields,
          Args&&... args) {
    if (!enabled(l))
        return;
    write(l, id, component, event,
          fmt::format(fields, std::forward<Args>(args)...));
}

#define CLOUDPROTO_LOG_LEVEL_FN(name)                                        \
    template <typename... Args>                                              \
    void name(std::string_view id, std::string_view component,               \
              std::string_view event, fmt::format_string<Args...> fields,    \
              Args&&... args) {                                              \
        emit(Level::name, id, component, event, fields,                      \
             std::forward<Args>(args)...);                                   \
    }
CLOUDPROTO_LOG_LEVEL_FN(trace)
CLOUDPROTO_LOG_LEVEL_FN(debug)
CLOUDPROTO_LOG_LEVEL_FN(info)
CLOUDPROTO_LOG_LEVEL_FN(warn)
CLOUDPROTO_LOG_LEVEL_FN(error)
#undef CLOUDPROTO_LOG_LEVEL_FN

} // namespace cloudproto::log
