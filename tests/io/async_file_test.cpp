// AsyncIO and AsyncFile: round trips at odd sizes, offsets and buffer alignments under every aio
// setting (block size, queue depth, threads, single submit, overlapped events, O_DIRECT or not),
// many requests in flight at once, O_DIRECT used where the file system takes it, and failures
// (a missing folder, a read past the end, a full device, a place nobody may write) that name the
// file, the offset and errno.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

#include "error_text.hpp"
#include "io_test_util.hpp"
#include "zt/io/async_file.hpp"

namespace zt::io {
namespace {

// Page-aligned bytes, so that O_DIRECT can take them (and, shifted by one, so that it cannot).
struct Aligned {
  explicit Aligned(size_t n) : bytes(n + kDirectAlignment) {
    void* p = nullptr;
    EXPECT_EQ(posix_memalign(&p, kDirectAlignment, bytes), 0);
    data.reset(static_cast<char*>(p));
  }
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  size_t bytes;
  std::unique_ptr<char, Free> data;
};

void fill(char* p, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = char(s >> 56);
  }
}

using zt::test::error_of;

AioOptions options(int64_t block, int64_t depth, int64_t threads, bool single, bool overlap, bool direct) {
  AioOptions o;
  o.block_size = block;
  o.queue_depth = depth;
  o.thread_count = threads;
  o.single_submit = single;
  o.overlap_events = overlap;
  o.direct = direct;
  return o;
}

TEST(AsyncFile, RoundTripsAtOddSizesOffsetsAndAlignments) {
  test::TempDir dir;
  std::vector<AioOptions> settings = {
      AioOptions{},                                     // DeepSpeed's defaults
      options(65536, 4, 3, false, true, true),          // many small blocks over three rings
      options(12288, 2, 2, true, false, true),          // single submits, a batch at a time
      options(5000, 3, 1, false, true, false),          // buffered, a block size that is no multiple of 4096
      options(32768, 4, 2, false, true, true),          // pread/pwrite workers (no io_uring)
  };
  settings.back().use_io_uring = false;
  const size_t sizes[] = {0, 1, 4095, 4096, 4097, 3 * 1048576 + 5};
  int case_number = 0;
  for (const AioOptions& o : settings) {
    AsyncIO io(o);
    if (!o.use_io_uring) EXPECT_FALSE(io.uses_io_uring());
    for (size_t n : sizes)
      for (uint64_t offset : {uint64_t(0), uint64_t(8192), uint64_t(7)})
        for (size_t shift : {size_t(0), size_t(1)}) {
          SCOPED_TRACE(testing::Message() << "block " << o.block_size << ", depth " << o.queue_depth << ", threads "
                                          << o.thread_count << ", direct " << o.direct << ": " << n << " bytes at "
                                          << offset << ", buffer shifted by " << shift);
          const std::string path = dir.file("round_trip_" + std::to_string(case_number++));
          Aligned out(n), in(n);
          fill(out.data.get() + shift, n, n + offset);
          {
            AsyncFile f(io, path, AsyncFile::Mode::create);
            EXPECT_EQ(f.direct(), o.direct);  // ext4 under the temp folder takes O_DIRECT
            Request w = f.write(out.data.get() + shift, n, offset);
            w.wait();
            EXPECT_TRUE(w.done());
            EXPECT_EQ(w.bytes(), n);
            EXPECT_EQ(f.size(), n ? offset + n : 0);
          }
          AsyncFile f(io, path, AsyncFile::Mode::read);
          f.read_all(in.data.get() + shift, n, offset);
          ASSERT_EQ(0, std::memcmp(in.data.get() + shift, out.data.get() + shift, n));
        }
  }
}

TEST(AsyncFile, ManyRequestsInFlightFinishInAnyOrder) {
  test::TempDir dir;
  AsyncIO io(options(16384, 4, 2, false, true, true));
  AsyncFile f(io, dir.file("many"), AsyncFile::Mode::create);
  constexpr size_t kPiece = 200000, kPieces = 12;  // unaligned pieces: O_DIRECT heads and buffered tails
  Aligned out(kPiece * kPieces), in(kPiece * kPieces);
  fill(out.data.get(), kPiece * kPieces, 3);
  std::vector<Request> writes;
  for (size_t i = 0; i < kPieces; ++i) writes.push_back(f.write(out.data.get() + i * kPiece, kPiece, i * kPiece));
  for (auto it = writes.rbegin(); it != writes.rend(); ++it) it->wait();
  std::vector<Request> reads;
  for (size_t i = kPieces; i-- > 0;) reads.push_back(f.read(in.data.get() + i * kPiece, kPiece, i * kPiece));
  for (const Request& r : reads) r.wait();
  EXPECT_EQ(0, std::memcmp(in.data.get(), out.data.get(), kPiece * kPieces));
}

// /dev/shm is tmpfs: O_DIRECT may be refused there (before Linux 6.6); the data round-trips either way.
TEST(AsyncFile, TmpfsRoundTripsWithOrWithoutDirectIo) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  const std::string path = "/dev/shm/zt_async_file_test_" + std::to_string(::getpid());
  AsyncIO io;
  Aligned out(1 << 20), in(1 << 20);
  fill(out.data.get(), 1 << 20, 9);
  {
    AsyncFile f(io, path, AsyncFile::Mode::create);
    f.write_all(out.data.get(), 1 << 20, 0);
    f.read_all(in.data.get(), 1 << 20, 0);
  }
  std::filesystem::remove(path);
  EXPECT_EQ(0, std::memcmp(in.data.get(), out.data.get(), 1 << 20));
}

TEST(AsyncFile, AMissingFolderNamesThePath) {
  AsyncIO io;
  const std::string e = error_of([&] { AsyncFile(io, "/nonexistent_zt_dir/swap/master.swp", AsyncFile::Mode::create); });
  EXPECT_NE(e.find("cannot open /nonexistent_zt_dir/swap/master.swp for writing: No such file or directory"),
            std::string::npos)
      << e;
}

TEST(AsyncFile, AReadPastTheEndNamesTheFileAndTheOffset) {
  test::TempDir dir;
  AsyncIO io(options(4096, 2, 1, false, true, true));
  Aligned buffer(3 * 4096);
  AsyncFile f(io, dir.file("short"), AsyncFile::Mode::create);
  f.write_all(buffer.data.get(), 100, 0);
  const std::string e = error_of([&] { f.read_all(buffer.data.get(), 3 * 4096, 0); });
  EXPECT_NE(e.find("reading " + dir.file("short") + " at offset "), std::string::npos) << e;
  EXPECT_NE(e.find("the file ends before it"), std::string::npos) << e;
}

TEST(AsyncFile, AFullDeviceNamesErrno) {
  if (access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no writable /dev/full here";
  AsyncIO io(options(4096, 4, 1, false, true, true));
  AsyncFile f(io, "/dev/full", AsyncFile::Mode::update);
  Aligned buffer(10000);
  const std::string e = error_of([&] { f.write_all(buffer.data.get(), 10000, 0); });
  EXPECT_NE(e.find("writing /dev/full at offset "), std::string::npos) << e;
  EXPECT_NE(e.find("No space left on device (errno 28)"), std::string::npos) << e;
}

TEST(AsyncFile, APlaceNobodyMayWriteNamesThePath) {
  AsyncIO io;
  // /proc refuses new files even to root; a read-only folder refuses others.
  std::string e = error_of([&] { AsyncFile(io, "/proc/zt_async_file_test", AsyncFile::Mode::create); });
  EXPECT_NE(e.find("cannot open /proc/zt_async_file_test for writing: "), std::string::npos) << e;
  if (geteuid() == 0) return;  // root writes into read-only folders
  test::TempDir dir;
  const std::string locked = dir.file("locked");
  std::filesystem::create_directories(locked);
  chmod(locked.c_str(), 0555);
  e = error_of([&] { AsyncFile(io, locked + "/f", AsyncFile::Mode::create); });
  chmod(locked.c_str(), 0755);
  EXPECT_NE(e.find("cannot open " + locked + "/f for writing: Permission denied"), std::string::npos) << e;
}

TEST(AsyncIO, BadSettingsNameTheKey) {
  EXPECT_NE(error_of([] { AsyncIO io(options(0, 8, 1, false, true, true)); }).find("aio.block_size must be positive"),
            std::string::npos);
  EXPECT_NE(error_of([] { AsyncIO io(options(4096, 0, 1, false, true, true)); }).find("aio.queue_depth"),
            std::string::npos);
  EXPECT_NE(error_of([] { AsyncIO io(options(4096, 8, 0, false, true, true)); }).find("aio.thread_count"),
            std::string::npos);
}

}  // namespace
}  // namespace zt::io
