#include "nicflow/sim/pcap_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "nicflow/sim/checksum.h"
#include "test_programs.h"

namespace nicflow::sim {
namespace {

using testing::Ip;

class PcapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nicflow-pcap-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const char* name) { return (dir_ / name).string(); }

  static PcapFrame Frame(const char* src, uint16_t sp, const char* dst, uint16_t dp,
                         uint64_t ts_ns) {
    PacketSpec s;
    s.src = Ip(src);
    s.dst = Ip(dst);
    s.src_port = sp;
    s.dst_port = dp;
    return {*BuildPacket(s), ts_ns};
  }

  std::filesystem::path dir_;
};

std::string RunCmd(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[512];
  while (fgets(buf, sizeof(buf), f)) out += buf;
  pclose(f);
  return out;
}

TEST_F(PcapTest, WrittenCapturesReadBackAndTcpdumpParsesThem) {
  std::vector<PcapFrame> frames = {Frame("10.0.1.1", 40000, "10.96.0.10", 80, 1'500'000'000),
                                   Frame("2001:db8::1", 1, "2001:db8::2", 443, 2'000'001'000)};
  ASSERT_TRUE(WritePcap(Path("a.pcap"), frames).ok());
  auto back = ReadPcap(Path("a.pcap"));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].data, frames[0].data);
  EXPECT_EQ((*back)[1].ts_ns, frames[1].ts_ns);
  if (access("/usr/bin/tcpdump", X_OK) != 0 && access("/usr/sbin/tcpdump", X_OK) != 0) {
    GTEST_SKIP() << "tcpdump not installed";
  }
  const std::string out = RunCmd("tcpdump -nn -r " + Path("a.pcap") + " 2>/dev/null");
  EXPECT_NE(out.find("10.0.1.1.40000 > 10.96.0.10.80"), std::string::npos) << out;
  EXPECT_NE(out.find("2001:db8::1.1 > 2001:db8::2.443"), std::string::npos) << out;
}

TEST_F(PcapTest, RunPcapWritesTranslatedFramesOut) {
  auto nic = SimNic::Create(*BuiltinProfile("unlimited"));
  ASSERT_TRUE(nic->Install(testing::MiniProgram({{"ns/a", "10.0.1.1"}, {"ns/b", "10.0.2.1"}},
                                                "10.96.0.10", 80, {"10.0.2.1"}, "10.0.9.9"))
                  .ok());
  std::vector<PcapFrame> in = {Frame("10.0.1.1", 40000, "10.96.0.10", 80, 1'000'000),
                               Frame("10.0.9.9", 40000, "10.96.0.10", 80, 2'000'000)};
  in.push_back({{1, 2, 3}, 3'000'000});  // garbage
  ASSERT_TRUE(WritePcap(Path("in.pcap"), in).ok());
  auto st = RunPcap(*nic, Path("in.pcap"), Path("out.pcap"), kUplinkPort);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->read, 3u);
  EXPECT_EQ(st->forwarded, 1u);
  EXPECT_EQ(st->dropped, 2u);
  auto out = ReadPcap(Path("out.pcap"));
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 1u);
  ParsedPacket p;
  ASSERT_EQ(ParsePacket((*out)[0].data, p), ParseError::kNone);
  EXPECT_EQ(DstAddr(p), Ip("10.0.2.1"));
  EXPECT_EQ(p.fields.get(Field::kL4Dst).lo, 8080u);
  EXPECT_TRUE(ChecksumsValid((*out)[0].data, p));
  EXPECT_EQ((*out)[0].ts_ns, 1'000'000u);
}

TEST_F(PcapTest, MissingOrForeignFilesAreErrorsNamingThePath) {
  auto r = ReadPcap(Path("missing.pcap"));
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing.pcap"), std::string::npos);
  EXPECT_FALSE(PcapWriter::Open(Path("no/such/dir/x.pcap")).ok());
}

}  // namespace
}  // namespace nicflow::sim
