// toml++'s implementation, compiled here from Debian's headers so that
// the fuzz targets see into its parser (Debian's libtomlplusplus.so,
// which the node links, is not instrumented).
//
// Without UBSan's `unreachable` check: toml++ 3.3.0 reaches its
// TOML_UNREACHABLE for some non-ASCII code points where it looks for
// whitespace (upstream issue marzer/tomlplusplus#190, fixed after 3.3.0).
// Debian's build answers them with a parse error, as it should.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
