#include "node/platform/containment.hpp"

#include <algorithm>

namespace cloudnode::platform {

namespace {

constexpr std::string_view layer_names[] = {"limits", "uid", "namespaces",
                                            "cgroup", "seccomp"};

bool holds(const std::vector<Layer>& layers, Layer layer) {
    return std::find(layers.begin(), layers.end(), layer) != layers.end();
}

} // namespace

std::string_view to_string(Layer layer) {
    return layer_names[static_cast<int>(layer)];
}

std::optional<Layer> layer_from_string(std::string_view name) {
    for (Layer layer : all_layers) {
        if (to_string(layer) == name)
            return layer;
    }
    return std::nullopt;
}

int containment_level(const std::vector<Layer>& layers) {
    if (!holds(layers, Layer::limits))
        return 0;
    bool namespaces = holds(layers, Layer::namespaces);
    if (namespaces && holds(layers, Layer::cgroup) &&
        holds(layers, Layer::seccomp))
        return 4;
    if (namespaces)
        return 3;
    if (holds(layers, Layer::uid))
        return 2;
    return 1;
}

std::string Containment::describe() const {
    std::string text = std::to_string(level());
    for (Layer layer : layers()) {
        text += ' ';
        text += to_string(layer);
    }
    return text;
}

} // namespace cloudnode::platform
