// Shared by the fuzz targets: the source tree's files, temporary files, and a check that fails
// the run (libFuzzer reports an abort as a crash and keeps the input).
#ifndef MOE_TESTS_FUZZ_FUZZ_UTIL_H_
#define MOE_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/status/status.h"

namespace moe::fuzz {

inline std::string SourcePath(const std::string& relative) {
  return std::string(MOE_SOURCE_DIR) + "/" + relative;
}

// A file of this process's own, rewritten with `bytes` on each call.
inline std::string WriteTempFile(const std::string& stem, const std::string& bytes) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/moe-fuzz-" + stem + "-" +
                           std::to_string(getpid());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

// Takes typed values off the front of a fuzz input; past the end, every value is zero.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T Take() {
    T value{};
    const size_t n = std::min(sizeof(T), size_ - pos_);
    std::memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }
  uint8_t Byte() { return Take<uint8_t>(); }
  std::string Rest() {
    std::string out(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return out;
  }
  size_t left() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

[[noreturn]] inline void Fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what.c_str());
  std::abort();
}

// An error the caller can act on: a code other than OK/UNKNOWN/INTERNAL, and a message.
inline bool IsClearError(const absl::Status& s) {
  return !s.ok() && s.code() != absl::StatusCode::kUnknown &&
         s.code() != absl::StatusCode::kInternal && !s.message().empty();
}

}  // namespace moe::fuzz

#define FUZZ_CHECK(cond, what)                                             \
  do {                                                                     \
    if (!(cond)) ::moe::fuzz::Fail(__FILE__, __LINE__, std::string(what)); \
  } while (0)

#endif  // MOE_TESTS_FUZZ_FUZZ_UTIL_H_
