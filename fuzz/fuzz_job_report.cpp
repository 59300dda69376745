// Fuzzes the reading of a job report (job_report.hpp): the "KEY value"
// lines of a STATUS, WAIT or RESULT reply, of a peer's RETURN and of a
// stored result, and the timestamps in them. A report read once must
// read the same after it is written out again, as a node does when it
// stores a peer's report and later shows it.
#include "cloudproto/job_report.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using cloudproto::Field;
using cloudproto::JobReport;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_job_report: %s\n", what);
        std::abort();
    }
}

// A timestamp that parses stands for one instant, and the text
// format_timestamp writes for it parses to that instant again.
void check_timestamp(std::string_view text) {
    auto when = cloudproto::parse_timestamp(text);
    if (!when)
        return;
    auto again =
        cloudproto::parse_timestamp(cloudproto::format_timestamp(*when));
    check(again && *again == *when, "a timestamp reads differently");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    // The reply's lines, as a client reads them
    std::vector<Field> fields;
    while (!text.empty()) {
        auto lf = text.find('\n');
        std::string_view line = text.substr(0, lf);
        text.remove_prefix(lf == std::string_view::npos ? text.size() : lf + 1);
        auto field = cloudproto::parse_field(line);
        if (!field)
            continue;
        if (line.find(' ') != std::string_view::npos)
            check(cloudproto::format_field(*field) == line,
                  "a field line reads differently");
        check_timestamp(field->second);
        fields.push_back(std::move(*field));
    }

    // Stored, then read back
    auto report = JobReport::from_fields(fields);
    if (!report)
        return 0;
    auto written = report->to_fields();
    auto again = JobReport::from_fields(written);
    check(again.has_value(), "a written report does not read back");
    check(again->to_fields() == written, "a report changed on its way");
    return 0;
}
