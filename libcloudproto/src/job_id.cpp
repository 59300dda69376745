#include "cloudproto/job_id.hpp"

#include "cloudproto/protocol.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace cloudproto {

bool is_valid_job_id(std::string_view id) {
    if (id.size() < min_job_id_bytes || id.size() > max_job_id_bytes)
        return false;
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

std::string make_job_id() {
    constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    std::array<unsigned char, 16> random{};
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1)
        throw std::runtime_error("no randomness for a job id");

    // 128 bits read five at a time; the last character holds 3 bits.
    std::string id;
    unsigned buffer = 0;
    int bits = 0;
    for (unsigned char byte : random) {
        buffer = (buffer << 8) | byte;
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            id += alphabet[(buffer >> bits) & 31];
        }
    }
    if (bits > 0)
        id += alphabet[(buffer << (5 - bits)) & 31];
    return id;
}

} // namespace cloudproto
