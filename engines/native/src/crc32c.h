// CRC32C (Castagnoli) for TFRecord framing: SSE4.2 crc32 instruction when the CPU has it
// (selected once at run time, so the wheel stays portable), slicing-by-8 otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hashlab {

uint32_t crc32c_extend(uint32_t crc, const uint8_t* data, size_t n);
inline uint32_t crc32c(const uint8_t* data, size_t n) { return crc32c_extend(0, data, n); }
uint32_t crc32c_portable(uint32_t crc, const uint8_t* data, size_t n);
bool crc32c_has_hw();

// TFRecord's masked CRC: rotate right by 15, add a constant.
inline uint32_t masked_crc(const uint8_t* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

}  // namespace hashlab
