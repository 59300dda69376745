// What a Windows node's containment holds. Jobs run as the node's own
// user inside a job object, which carries the `limits` layer: memory,
// CPU time and process limits for the job as a whole, and the death of
// every process of the tree with the job.
#pragma once

#include "node/platform/containment.hpp"

namespace cloudnode::platform {

struct Containment::Impl {
    ContainmentSettings settings;
    std::vector<Layer> layers;
    std::vector<MissingLayer> missing;
};

} // namespace cloudnode::platform
