#include "services/common/host_port.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace moe {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(HostPortTest, SplitsNamesAndLiterals) {
  absl::StatusOr<HostPort> a = ParseHostPort("pool-a:50061", "--advertise");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "pool-a");
  EXPECT_EQ(a->port, 50061);
  absl::StatusOr<HostPort> b = ParseHostPort("[::1]:80", "--target");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "[::1]");
  EXPECT_EQ(b->port, 80);
  absl::StatusOr<HostPort> c = ParseHostPort(":0", "--listen");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "");
  EXPECT_EQ(c->port, 0);
}

TEST(HostPortTest, RefusesBadSyntaxNamingTheField) {
  EXPECT_THAT(Message(ParseHostPort("localhost", "--target").status()),
              HasSubstr("--target: \"localhost\" is not HOST:PORT"));
  EXPECT_THAT(Message(ParseHostPort("h:70000", "--router").status()),
              HasSubstr("--router: \"h:70000\" has no port"));
  for (const char* bad : {"h:", "h:-1", "h:+80", "h:8o", "h: 80"}) {
    EXPECT_THAT(Message(ParseHostPort(bad, "address").status()), HasSubstr("has no port")) << bad;
  }
  EXPECT_THAT(Message(ParseHostPort("[::1:80", "address").status()), HasSubstr("unclosed '['"));
  EXPECT_THAT(Message(ParseHostPort("::1:80", "address").status()), HasSubstr("without brackets"));
}

TEST(HostPortTest, KnowsEverySpellingOfEveryInterface) {
  for (const char* host : {"", "0.0.0.0", "[::]", "[::0]", "[0:0::0]", "[0:0:0:0:0:0:0:0]"}) {
    EXPECT_TRUE(IsWildcardHost(host)) << host;
  }
  for (const char* host : {"127.0.0.1", "[::1]", "pool-a", "0.0.0.1", "[::ffff:0.0.0.1]",
                           "0.0.0.0.example", "[fe80::]"}) {
    EXPECT_FALSE(IsWildcardHost(host)) << host;
  }
}

TEST(HostPortTest, DialableMeansAConcreteHostAndPort) {
  EXPECT_TRUE(CheckDialable("pool-a:50061", "address").ok());
  EXPECT_TRUE(CheckDialable("[::1]:50061", "address").ok());
  for (const char* bad : {"0.0.0.0:50061", "[::]:50061", "[::0]:50061"}) {
    EXPECT_THAT(Message(CheckDialable(bad, "address")),
                HasSubstr("listen-everywhere address, which no other process can dial"))
        << bad;
  }
  EXPECT_THAT(Message(CheckDialable(":50061", "address")), HasSubstr("has no host"));
  EXPECT_THAT(Message(CheckDialable("pool-a:0", "address")), HasSubstr("port 0"));
  EXPECT_THAT(Message(CheckDialable("pool-x", "address")), HasSubstr("address: \"pool-x\""));
}

TEST(HostPortTest, KnowsLoopbackFromAddressesOthersCanReach) {
  for (const char* host : {"localhost", "LOCALHOST", "pool.localhost", "127.0.0.1", "127.1.2.3",
                           "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"10.0.0.1", "198.18.0.2", "pool-a", "[::2]", "[::ffff:10.0.0.1]", "",
                           "0.0.0.0", "128.0.0.1", "localhost.example"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

}  // namespace
}  // namespace moe
