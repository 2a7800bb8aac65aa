// SHA-256 and HMAC-SHA256 (OpenSSL), hex encoding: the hashing SigV4 signs
// with, also used to name pipeline runs by their inputs. Pure functions;
// thread-safe. Implemented in sigv4.cc.
#pragma once

#include <string>
#include <string_view>

namespace cloudmerge {

std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
std::string HexEncode(std::string_view raw);

}  // namespace cloudmerge
