#include "services/common/tls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace moe {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("moe_tls_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const std::string make =
        std::string(MOE_SOURCE_DIR) + "/deploy/tls/make_certs.sh " + dir_ + " svc >/dev/null 2>&1";
    ASSERT_EQ(std::system(make.c_str()), 0) << make;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(TlsTest, NoFlagsIsPlaintextAndAllThreeLoad) {
  absl::StatusOr<TlsConfig> none = LoadTls("", "", "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->enabled());
  absl::StatusOr<TlsConfig> tls = LoadTls(dir_ + "/svc.pem", dir_ + "/svc.key", dir_ + "/ca.pem");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->enabled());
  EXPECT_THAT(tls->key_pem, HasSubstr("PRIVATE KEY"));
}

TEST_F(TlsTest, HalfASetMissingOrWrongFilesAreRefusedNamingTheFlag) {
  absl::Status s = LoadTls(dir_ + "/svc.pem", "", "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("missing: --tls_key --tls_ca"));
  s = LoadTls(dir_ + "/svc.pem", dir_ + "/nope.key", dir_ + "/ca.pem").status();
  EXPECT_THAT(s.message(), HasSubstr("--tls_key=" + dir_ + "/nope.key: cannot read"));
  // A key where the CA belongs: not a certificate.
  s = LoadTls(dir_ + "/svc.pem", dir_ + "/svc.key", dir_ + "/svc.key").status();
  EXPECT_THAT(s.message(), HasSubstr("--tls_ca="));
  EXPECT_THAT(s.message(), HasSubstr("CERTIFICATE"));
}

}  // namespace
}  // namespace moe
