// What cloud-submit writes: its own lines on stderr, the job's output
// byte for byte, and text from a node made safe for a terminal.
#pragma once

#include <string>
#include <string_view>

namespace cloudsubmit {

// Text that came from a node's reply, fit to print: every octet outside
// printable ASCII (a control octet, DEL, 0x80 to 0xFF) becomes \xNN, so
// that a node cannot drive the customer's terminal.
std::string printable(std::string_view node_text);

// The job's stdout and stderr, unchanged, each on its own stream.
void write_job_output(std::string_view out, std::string_view err);

// "cloud-submit: <text>" on stderr, on a line of its own: when the job's
// stderr ended without a newline, one comes first.
void write_tool_line(std::string_view text);

} // namespace cloudsubmit
