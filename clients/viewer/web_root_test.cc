#include "clients/viewer/web_root.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace moe::viewer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(WebRootTest, StaticFileNameServesOnlyFlatKnownFiles) {
  EXPECT_EQ(StaticFileName("/"), "index.html");
  EXPECT_EQ(StaticFileName("/index.html"), "index.html");
  EXPECT_EQ(StaticFileName("/app.js"), "app.js");
  // The page's modules are served by name; there is no list to keep in step with web/.
  EXPECT_EQ(StaticFileName("/token_panel.js"), "token_panel.js");
  EXPECT_EQ(StaticFileName("/style.css"), "style.css");
  for (const char* bad : {"", "/..", "/../etc/passwd", "/a/b.js", "/.hidden.js", "/x.sh", "/noext",
                          "/a%2fb.js", "/a\\b.js"}) {
    EXPECT_FALSE(StaticFileName(bad).has_value()) << bad;
  }
}

TEST(WebRootTest, ContentTypes) {
  EXPECT_EQ(ContentTypeFor("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("style.CSS"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("index.html"), "text/html; charset=utf-8");
  EXPECT_FALSE(ContentTypeFor("run.sh").has_value());
}

TEST(WebRootTest, CandidatesInOrder) {
  EXPECT_THAT(WebRootCandidates("", "", "/repo", "/repo/build/clients/viewer"),
              ElementsAre("/repo/clients/viewer/web", "/repo/clients/viewer/web",
                          "/repo/build/clients/share/moe/viewer/web"));
  EXPECT_THAT(WebRootCandidates("/flag", "/env", "", ""), ElementsAre("/flag", "/env"));
}

TEST(WebRootTest, ResolveFindsTheFirstWithAnIndex) {
  const fs::path root = fs::path(::testing::TempDir()) / absl::StrCat("viewer_web_", getpid());
  const fs::path web = root / "clients/viewer/web";
  fs::create_directories(web);
  std::ofstream(web / "index.html") << "<!doctype html>";
  absl::StatusOr<std::string> found = ResolveWebRoot("", "", root.string(), "/nowhere/bin");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(fs::path(*found), web);
  // Run from elsewhere: found next to the executable (build/clients/viewer/viewer).
  found = ResolveWebRoot("", "", "/nowhere", (root / "build/clients/viewer").string());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(fs::path(*found), web);
  // An explicit directory without the page is an error naming it, not a fall-through.
  absl::StatusOr<std::string> bad = ResolveWebRoot("/nowhere", "", root.string(), "");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("--web_root: /nowhere"));
  bad = ResolveWebRoot("", "/nowhere", root.string(), "");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("MOE_VIEWER_WEB_ROOT"));
  bad = ResolveWebRoot("", "", "/nowhere", "");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  fs::remove_all(root);
}

}  // namespace
}  // namespace moe::viewer
