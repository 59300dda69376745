#include "cloudproto/job_report.hpp"

#include "cloudproto/text.hpp"

#include <fmt/format.h>

namespace cloudproto {

namespace {

constexpr std::string_view state_names[] = {"queued", "running", "relayed",
                                            "done", "failed"};
constexpr std::string_view outcome_names[] = {"exited", "signalled",
                                              "timeout"};

template <typename Enum, std::size_t N>
std::optional<Enum> from_names(const std::string_view (&names)[N],
                               std::string_view text) {
    for (std::size_t i = 0; i < N; ++i) {
        if (names[i] == text)
            return static_cast<Enum>(i);
    }
    return std::nullopt;
}

std::string_view yes_no(bool b) { return b ? "yes" : "no"; }

} // namespace

std::string_view to_string(JobState state) {
    return state_names[static_cast<int>(state)];
}

std::string_view to_string(Outcome outcome) {
    return outcome_names[static_cast<int>(outcome)];
}

std::optional<JobState> job_state_from_string(std::string_view text) {
    return from_names<JobState>(state_names, text);
}

std::optional<Outcome> outcome_from_string(std::string_view text) {
    return from_names<Outcome>(outcome_names, text);
}

bool is_final(JobState state) {
    return state == JobState::done || state == JobState::failed;
}

std::string format_timestamp(Clock::time_point when) {
    // The calendar of <chrono>, not gmtime_r, which Windows lacks.
    using namespace std::chrono;
    const auto day = floor<days>(when);
    const year_month_day date{day};
    const hh_mm_ss time{floor<milliseconds>(when - day)};
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                       static_cast<int>(date.year()),
                       static_cast<unsigned>(date.month()),
                       static_cast<unsigned>(date.day()),
                       time.hours().count(), time.minutes().count(),
                       time.seconds().count(), time.subseconds().count());
}

// Days since 1970-01-01 of a proleptic Gregorian date (civil calendar).
static long days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<long>(doe) - 719468;
}

std::optional<Clock::time_point> parse_timestamp(std::string_view t) {
    // Exactly the shape format_timestamp writes.
    if (t.size() != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' ||
        t[13] != ':' || t[16] != ':' || t[19] != '.' || t[23] != 'Z')
        return std::nullopt;
    auto y = parse_decimal<int>(t.substr(0, 4));
    auto mo = parse_decimal<unsigned>(t.substr(5, 2));
    auto d = parse_decimal<unsigned>(t.substr(8, 2));
    auto h = parse_decimal<int>(t.substr(11, 2));
    auto mi = parse_decimal<int>(t.substr(14, 2));
    auto s = parse_decimal<int>(t.substr(17, 2));
    auto ms = parse_decimal<int>(t.substr(20, 3));
    if (!y || !mo || !d || !h || !mi || !s || !ms || *mo < 1 || *mo > 12 ||
        *d < 1 || *d > 31 || *h > 23 || *mi > 59 || *s > 60)
        return std::nullopt;
    using namespace std::chrono;
    auto days = days_from_civil(*y, *mo, *d);
    milliseconds since_epoch = hours{24 * days} + hours{*h} +
                               minutes{*mi} + seconds{*s} +
                               milliseconds{*ms};
    // The clock may hold less: 64-bit nanoseconds end in 2262.
    if (since_epoch > duration_cast<milliseconds>(Clock::duration::max()) ||
        since_epoch < duration_cast<milliseconds>(Clock::duration::min()))
        return std::nullopt;
    return Clock::time_point{duration_cast<Clock::duration>(since_epoch)};
}

std::vector<Field> JobReport::to_fields() const {
    std::vector<Field> f;
    auto add = [&f](std::string key, std::string value) {
        f.emplace_back(std::move(key), std::move(value));
    };
    auto add_time = [&](const char* key,
                        const std::optional<Clock::time_point>& t) {
        if (t)
            add(key, format_timestamp(*t));
    };

    add("JOB", job_id);
    add("STATE", std::string(to_string(state)));
    if (!runtime.empty())
        add("RUNTIME", runtime);
    if (!node.empty())
        add("NODE", node);
    if (!relayed_to.empty())
        add("RELAYED-TO", relayed_to);
    if (!trace.empty())
        add("TRACE", trace);
    add_time("ACCEPTED", accepted);
    add_time("STARTED", started);
    add_time("FINISHED", finished);
    if (outcome)
        add("OUTCOME", std::string(to_string(*outcome)));
    if (exit_code)
        add("EXIT-CODE", std::to_string(*exit_code));
    if (signal)
        add("SIGNAL", std::to_string(*signal));
    if (duration)
        add("DURATION-MS", std::to_string(duration->count()));
    if (is_final(state)) {
        add("STDOUT-BYTES", std::to_string(stdout_bytes));
        add("STDERR-BYTES", std::to_string(stderr_bytes));
        add("STDOUT-TRUNCATED", std::string(yes_no(stdout_truncated)));
        add("STDERR-TRUNCATED", std::string(yes_no(stderr_truncated)));
    }
    if (!containment.empty())
        add("CONTAINMENT", containment);
    if (!limit_hit.empty())
        add("LIMIT-HIT", limit_hit);
    if (!error.empty())
        add("ERROR", error);
    if (!mail.empty())
        add("MAIL", mail);
    if (!mail_error.empty())
        add("MAIL-ERROR", mail_error);
    return f;
}

std::optional<JobReport> JobReport::from_fields(const std::vector<Field>& f) {
    JobReport r;
    bool have_job = false;
    bool have_state = false;

    for (const auto& [key, value] : f) {
        if (key == "JOB") {
            r.job_id = value;
            have_job = true;
        } else if (key == "STATE") {
            auto s = job_state_from_string(value);
            if (!s)
                return std::nullopt;
            r.state = *s;
            have_state = true;
        } else if (key == "RUNTIME") {
            r.runtime = value;
        } else if (key == "NODE") {
            r.node = value;
        } else if (key == "RELAYED-TO") {
            r.relayed_to = value;
        } else if (key == "TRACE") {
            r.trace = value;
        } else if (key == "ACCEPTED") {
            r.accepted = parse_timestamp(value);
        } else if (key == "STARTED") {
            r.started = parse_timestamp(value);
        } else if (key == "FINISHED") {
            r.finished = parse_timestamp(value);
        } else if (key == "OUTCOME") {
            r.outcome = outcome_from_string(value);
        } else if (key == "EXIT-CODE") {
            r.exit_code = parse_decimal<int>(value);
        } else if (key == "SIGNAL") {
            r.signal = parse_decimal<int>(value);
        } else if (key == "DURATION-MS") {
            if (auto ms = parse_decimal<long long>(value))
                r.duration = std::chrono::milliseconds{*ms};
        } else if (key == "STDOUT-BYTES") {
            r.stdout_bytes = parse_decimal<std::uint64_t>(value).value_or(0);
        } else if (key == "STDERR-BYTES") {
            r.stderr_bytes = parse_decimal<std::uint64_t>(value).value_or(0);
        } else if (key == "STDOUT-TRUNCATED") {
            r.stdout_truncated = value == "yes";
        } else if (key == "STDERR-TRUNCATED") {
            r.stderr_truncated = value == "yes";
        } else if (key == "CONTAINMENT") {
            r.containment = value;
        } else if (key == "LIMIT-HIT") {
            r.limit_hit = value;
        } else if (key == "ERROR") {
            r.error = value;
        } else if (key == "MAIL") {
            r.mail = value;
        } else if (key == "MAIL-ERROR") {
            r.mail_error = value;
        }
        // Any other key comes from a newer node: ignored by design.
    }
    if (!have_job || !have_state)
        return std::nullopt;
    return r;
}

std::string format_field(const Field& field) {
    return field.first + ' ' + field.second;
}

std::optional<Field> parse_field(std::string_view line) {
    auto space = line.find(' ');
    std::string_view key = line.substr(0, space);
    if (key.empty())
        return std::nullopt;
    for (char c : key) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-';
        if (!ok)
            return std::nullopt;
    }
    std::string_view value =
        space == std::string_view::npos ? "" : line.substr(space + 1);
    return Field{std::string(key), std::string(value)};
}

} // namespace cloudproto
