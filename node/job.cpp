#include "node/job.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>

namespace cloudnode {

std::string payload_digest(std::string_view descriptor,
                           std::string_view script) {
    // The descriptor's length first, so that no other split of the same
    // octets has the same digest.
    std::array<unsigned char, 8> length{};
    auto n = static_cast<std::uint64_t>(descriptor.size());
    for (int i = 0; i < 8; ++i)
        length[i] = static_cast<unsigned char>(n >> (8 * i));

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, length.data(), length.size());
    EVP_DigestUpdate(ctx, descriptor.data(), descriptor.size());
    EVP_DigestUpdate(ctx, script.data(), script.size());
    EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);

    std::string hex;
    hex.reserve(md_len * 2);
    for (unsigned int i = 0; i < md_len; ++i)
        hex += fmt::format("{:02x}", md[i]);
    return hex;
}

} // namespace cloudnode
