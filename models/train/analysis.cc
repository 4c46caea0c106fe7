#include "models/train/analysis.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "models/checkpoint.h"
#include "models/tokenizer.h"
#include "models/train/trainer.h"
#include "models/transformer.h"
#include "nlohmann/json.hpp"

namespace moe {
namespace {

absl::StatusOr<std::vector<uint8_t>> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

// Lift of each label at one expert: P(label | expert) / P(label). Labels seen fewer than
// min_count times at the expert are left out: their lift is noise.
nlohmann::ordered_json TopLifts(const std::vector<int64_t>& at_expert,
                                const std::vector<int64_t>& overall,
                                const std::vector<std::string>& names, const char* key,
                                int64_t min_count, int top) {
  int64_t n_e = 0, n = 0;
  for (int64_t c : at_expert) n_e += c;
  for (int64_t c : overall) n += c;
  std::vector<std::pair<double, int>> lifts;
  for (size_t i = 0; i < names.size(); ++i) {
    if (at_expert[i] < min_count || overall[i] == 0 || n_e == 0) continue;
    const double lift =
        (static_cast<double>(at_expert[i]) / n_e) / (static_cast<double>(overall[i]) / n);
    lifts.emplace_back(lift, static_cast<int>(i));
  }
  std::sort(lifts.begin(), lifts.end(), [](auto& a, auto& b) { return a.first > b.first; });
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (int i = 0; i < std::min<int>(top, lifts.size()); ++i) {
    const int idx = lifts[i].second;
    out.push_back({{key, names[idx]},
                   {"lift", std::round(lifts[i].first * 1000) / 1000},
                   {"share", std::round(1e4 * at_expert[idx] / static_cast<double>(n_e)) / 1e4}});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> AnalyzeExperts(const AnalysisInputs& in, const std::string& out_path) {
  absl::StatusOr<Checkpoint> ckpt = LoadCheckpoint(in.model_dir);
  if (!ckpt.ok()) return ckpt.status();
  const ModelConfig& c = ckpt->config;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
      Tokenizer::Load(in.model_dir + "/" + kTokenizerFile);
  if (!tok.ok()) return tok.status();
  absl::StatusOr<std::vector<uint16_t>> ids = ReadTokenFile(in.ids);
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::vector<uint8_t>> tags = ReadBytes(in.tags);
  if (!tags.ok()) return tags.status();
  absl::StatusOr<std::vector<uint8_t>> genres = ReadBytes(in.genres);
  if (!genres.ok()) return genres.status();
  if (tags->size() != ids->size() || genres->size() != ids->size()) {
    return absl::InvalidArgumentError("tags/genres: one label per token expected");
  }
  std::ifstream lf(in.labels);
  if (!lf) return absl::NotFoundError(absl::StrCat(in.labels, ": cannot open"));
  nlohmann::json labels = nlohmann::json::parse(lf, nullptr, false);
  if (labels.is_discarded() || !labels.contains("tags") || !labels.contains("genres")) {
    return absl::InvalidArgumentError(absl::StrCat(in.labels, ": expected {tags, genres}"));
  }
  const auto tag_names = labels["tags"].get<std::vector<std::string>>();
  const auto genre_names = labels["genres"].get<std::vector<std::string>>();

  MoeTransformer model(c);
  if (absl::Status s = LoadStateDict(*model, ckpt->state); !s.ok()) return s;
  model->eval();
  torch::NoGradGuard no_grad;
  const RoutingPolicy policy = DefaultPolicy(c);
  const int E = c.n_experts;
  // [layer][expert] counts
  std::vector<std::vector<int64_t>> tokens(c.n_layers, std::vector<int64_t>(E, 0));
  std::vector<std::vector<std::vector<int64_t>>> tag_at(
      c.n_layers, std::vector<std::vector<int64_t>>(E, std::vector<int64_t>(tag_names.size())));
  std::vector<std::vector<std::vector<int64_t>>> genre_at(
      c.n_layers, std::vector<std::vector<int64_t>>(E, std::vector<int64_t>(genre_names.size())));
  std::vector<std::vector<std::map<int, int64_t>>> tok_at(c.n_layers,
                                                          std::vector<std::map<int, int64_t>>(E));
  std::vector<int64_t> tag_all(tag_names.size()), genre_all(genre_names.size());
  std::map<int, int64_t> tok_all;
  int64_t total_tokens = 0;
  for (size_t s = 0; s < ids->size(); s += in.seq_len) {
    const size_t len = std::min<size_t>(in.seq_len, ids->size() - s);
    std::vector<int64_t> x(ids->begin() + s, ids->begin() + s + len);
    ForwardStats stats;
    model->forward(torch::tensor(x).unsqueeze(0), policy, &stats);
    for (size_t t = 0; t < len; ++t) {
      const size_t i = s + t;
      const uint8_t tag = (*tags)[i], genre = (*genres)[i];
      if (tag < tag_all.size()) ++tag_all[tag];
      if (genre < genre_all.size()) ++genre_all[genre];
      ++tok_all[x[t]];
      ++total_tokens;
      for (int l = 0; l < c.n_layers; ++l) {
        torch::Tensor row = stats.expert_ids[l][t];
        for (int k = 0; k < row.size(0); ++k) {
          const int64_t id = row[k].item<int64_t>();
          if (id < 0) continue;
          const int e = static_cast<int>(id / c.granularity);
          ++tokens[l][e];
          if (tag < tag_all.size()) ++tag_at[l][e][tag];
          if (genre < genre_all.size()) ++genre_at[l][e][genre];
          ++tok_at[l][e][x[t]];
        }
      }
    }
  }

  nlohmann::ordered_json root;
  root["model"] = c.name;
  root["split"] = in.ids;
  root["tokens"] = total_tokens;
  root["layers"] = nlohmann::ordered_json::array();
  std::ostringstream summary;
  summary << absl::StrFormat("analysed %d tokens\n", total_tokens);
  for (int l = 0; l < c.n_layers; ++l) {
    int64_t slots = 0;
    for (int64_t v : tokens[l]) slots += v;
    double mean = static_cast<double>(slots) / E, var = 0, mx = 0;
    for (int64_t v : tokens[l]) {
      var += (v - mean) * (v - mean) / E;
      mx = std::max<double>(mx, v);
    }
    const double cv = mean > 0 ? std::sqrt(var) / mean : 0;
    nlohmann::ordered_json layer;
    layer["layer"] = l;
    layer["cv"] = std::round(cv * 1e4) / 1e4;
    layer["max_over_mean"] = mean > 0 ? std::round(mx / mean * 1e4) / 1e4 : 0;
    layer["experts"] = nlohmann::ordered_json::array();
    summary << absl::StrFormat("layer %d: load CV %.3f, max/mean %.2f, shares", l, cv,
                               mean > 0 ? mx / mean : 0);
    for (int e = 0; e < E; ++e) {
      nlohmann::ordered_json ex;
      const double share = slots > 0 ? static_cast<double>(tokens[l][e]) / slots : 0;
      summary << absl::StrFormat(" %.3f", share);
      ex["expert"] = e;
      ex["token_share"] = std::round(share * 1e4) / 1e4;
      ex["top_tags"] = TopLifts(tag_at[l][e], tag_all, tag_names, "tag", 20, 5);
      ex["top_genres"] = TopLifts(genre_at[l][e], genre_all, genre_names, "genre", 20, 3);
      // Example tokens: frequent at this expert and over-represented there.
      std::vector<std::pair<double, int>> cand;
      for (const auto& [id, n] : tok_at[l][e]) {
        if (n < 10) continue;
        const double lift = (static_cast<double>(n) / std::max<int64_t>(1, tokens[l][e])) /
                            (static_cast<double>(tok_all[id]) / total_tokens);
        cand.emplace_back(lift * std::log(static_cast<double>(n)), id);
      }
      std::sort(cand.begin(), cand.end(), [](auto& a, auto& b) { return a.first > b.first; });
      ex["examples"] = nlohmann::ordered_json::array();
      for (int i = 0; i < std::min<int>(8, cand.size()); ++i) {
        ex["examples"].push_back(SanitizeUtf8((*tok)->TokenBytes(cand[i].second)));
      }
      layer["experts"].push_back(ex);
    }
    summary << "\n";
    root["layers"].push_back(layer);
  }
  std::ofstream out(out_path);
  out << root.dump(1) << "\n";
  if (!out) return absl::InternalError(absl::StrCat(out_path, ": write failed"));
  summary << "wrote " << out_path << "\n";
  return summary.str();
}

}  // namespace moe
