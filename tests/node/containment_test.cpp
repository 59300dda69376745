#include "node/platform/containment.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace cloudnode::platform;

TEST_CASE("a containment level is what its layers guarantee together") {
    using L = Layer;
    struct Row {
        std::vector<Layer> layers;
        int level;
    } rows[] = {
        {{}, 0},
        {{L::limits}, 1},
        {{L::limits, L::cgroup, L::seccomp}, 1},
        {{L::limits, L::uid}, 2},
        {{L::limits, L::uid, L::cgroup, L::seccomp}, 2},
        {{L::limits, L::namespaces}, 3},
        {{L::limits, L::namespaces, L::seccomp}, 3},
        {{L::limits, L::uid, L::namespaces, L::cgroup}, 3},
        {{L::limits, L::namespaces, L::cgroup, L::seccomp}, 4},
        {{L::limits, L::uid, L::namespaces, L::cgroup, L::seccomp}, 4},
        {{L::uid, L::namespaces, L::cgroup, L::seccomp}, 0},
    };
    for (const auto& row : rows) {
        CAPTURE(row.level);
        CHECK(containment_level(row.layers) == row.level);
    }
}

TEST_CASE("layer names read back as the layers") {
    for (Layer layer : all_layers)
        CHECK(layer_from_string(to_string(layer)) == layer);
    CHECK_FALSE(layer_from_string("Limits"));
    CHECK_FALSE(layer_from_string(""));
    CHECK(to_string(Layer::namespaces) == "namespaces");
}

TEST_CASE("a minimal containment has the limits layer only") {
    auto c = Containment::minimal();
    CHECK(c->layers() == std::vector<Layer>{Layer::limits});
    CHECK(c->level() == 1);
    CHECK(c->describe() == "1 limits");
    CHECK(c->missing().empty());
}
