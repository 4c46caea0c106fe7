#include "models/sentencepiece_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace moe::spm {

struct Processor::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

Processor::Processor() : impl_(std::make_unique<Impl>()) {}
Processor::~Processor() = default;

std::string Processor::Load(const std::string& path) {
  const auto status = impl_->sp.Load(path);
  return status.ok() ? std::string() : status.ToString();
}

int Processor::size() const { return impl_->sp.GetPieceSize(); }
std::string Processor::IdToPiece(int id) const { return impl_->sp.IdToPiece(id); }
bool Processor::IsControl(int id) const { return impl_->sp.IsControl(id); }
bool Processor::IsUnknown(int id) const { return impl_->sp.IsUnknown(id); }
bool Processor::IsByte(int id) const { return impl_->sp.IsByte(id); }

std::vector<int> Processor::Encode(std::string_view text) const {
  std::vector<int> ids;
  impl_->sp.Encode(std::string(text), &ids).IgnoreError();
  return ids;
}

std::string Train(const std::string& args) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  return status.ok() ? std::string() : status.ToString();
}

}  // namespace moe::spm
