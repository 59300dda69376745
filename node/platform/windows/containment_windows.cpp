#include "node/platform/windows/containment_windows.hpp"

#include <algorithm>

namespace cloudnode::platform {

Containment::Containment(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Containment::~Containment() = default;

const std::vector<Layer>& Containment::layers() const {
    return impl_->layers;
}

const std::vector<MissingLayer>& Containment::missing() const {
    return impl_->missing;
}

std::unique_ptr<Containment> Containment::minimal() {
    auto impl = std::make_unique<Impl>();
    impl->layers = {Layer::limits};
    return std::unique_ptr<Containment>(new Containment(std::move(impl)));
}

// TODO(#6): uid as a restricted token or an account per slot, and
// namespaces as an AppContainer; until then a Windows node stays at
// level 1 and a job may read what the node's user may read.
std::unique_ptr<Containment>
Containment::probe(const ContainmentSettings& settings) {
    auto self = minimal();
    Impl& impl = *self->impl_;
    impl.settings = settings;
    for (Layer layer : all_layers) {
        if (layer == Layer::limits)
            continue;
        const bool disabled =
            std::find(settings.disabled.begin(), settings.disabled.end(),
                      layer) != settings.disabled.end();
        impl.missing.push_back({layer, disabled
                                           ? "disabled in the configuration"
                                           : "not on Windows yet"});
    }
    return self;
}

} // namespace cloudnode::platform
