// A narrow, absl-free window onto SentencePiece. Its headers declare their own absl::string_view,
// which clashes with Abseil's, so only sentencepiece_shim.cc may include them.
#ifndef MOE_MODELS_SENTENCEPIECE_SHIM_H_
#define MOE_MODELS_SENTENCEPIECE_SHIM_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::spm {

// Not thread-safe to load; const methods are safe to share.
class Processor {
 public:
  Processor();
  ~Processor();
  // Empty string on success, else the error.
  std::string Load(const std::string& path);
  int size() const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  std::vector<int> Encode(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs the SentencePiece trainer with command-line style arguments; empty string on success.
std::string Train(const std::string& args);

}  // namespace moe::spm

#endif  // MOE_MODELS_SENTENCEPIECE_SHIM_H_
