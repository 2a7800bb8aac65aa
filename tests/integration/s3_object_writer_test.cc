// S3ObjectWriter against a live moto server: multipart results equal the data,
// small objects are one PutObject, aborted or failed writers leave neither an
// object nor an upload behind. Part sizes are moto's (and S3's) minimum, 5 MiB.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>

#include "cloudmerge/aws/s3_object_writer.h"
#include "cloudmerge/aws/sigv4.h"
#include "s3_test_support.h"

namespace cloudmerge {
namespace {

using testing::Bucket;
using testing::HookTransport;
using testing::IsPartUpload;
using testing::NewClient;
using testing::RandomBytes;
using testing::SharedCurl;
using testing::TestConfig;
using testing::TestObject;

constexpr uint64_t kMiB = 1 << 20;

// Counts requests by kind and the most part uploads seen in flight at once.
struct Counting {
  std::atomic<int> creates{0}, parts{0}, puts{0}, completes{0}, aborts{0};
  std::atomic<int> in_flight{0}, max_in_flight{0};
  // Part numbers whose upload is answered with this canned failure instead.
  int fail_part = -1;

  std::shared_ptr<HookTransport> Transport() {
    return std::make_shared<HookTransport>(SharedCurl(), [this](const HttpRequest& r, int, HttpTransport& inner) {
      bool post = r.method == "POST", has_id = r.url.find("uploadId=") != std::string::npos;
      if (post && r.url.find("?uploads") != std::string::npos) ++creates;
      if (post && has_id) ++completes;
      if (r.method == "DELETE" && has_id) ++aborts;
      if (r.method == "PUT" && !IsPartUpload(r)) ++puts;
      if (!IsPartUpload(r)) return inner.Send(r);
      ++parts;
      if (fail_part > 0 && r.url.find("partNumber=" + std::to_string(fail_part) + "&") != std::string::npos) {
        HttpResponse denied;
        denied.status = 403;
        denied.body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        return Result<HttpResponse>(denied);
      }
      int now = ++in_flight;
      int seen = max_in_flight.load();
      while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
      }
      auto res = inner.Send(r);
      --in_flight;
      return res;
    });
  }
};

S3Config SmallParts(unsigned parallel = 2) {
  S3Config c = TestConfig();
  c.part_size = 5 * kMiB;
  c.parallel_requests = parallel;
  return c;
}

// Appends `data` in uneven pieces, as a producer would.
Status AppendInPieces(S3ObjectWriter& w, std::string_view data) {
  size_t step = 777777;
  while (!data.empty()) {
    size_t n = std::min(step, data.size());
    CM_RETURN_IF_ERROR(w.Append(data.substr(0, n)));
    data.remove_prefix(n);
    step = step * 3 % 1999993 + 1;
  }
  return Status::OK();
}

void ExpectNoUploadsLeft(S3Client& c, const S3Uri& uri) {
  auto uploads = c.ListMultipartUploads(uri.bucket, uri.key);
  ASSERT_TRUE(uploads.ok()) << uploads.status().message();
  EXPECT_TRUE(uploads->empty()) << uploads->size() << " orphaned upload(s) under " << uri.ToString();
}

void ExpectNoObject(S3Client& c, const S3Uri& uri) {
  auto head = c.HeadObject(uri);
  ASSERT_FALSE(head.ok()) << "an object appeared at " << uri.ToString();
  EXPECT_EQ(head.status().code(), Status::Code::kNotFound) << head.status().message();
}

TEST(S3ObjectWriterTest, MultipartResultEqualsTheData) {
  Counting count;
  auto client = NewClient(count.Transport(), SmallParts(2));
  S3Uri uri = TestObject("big.bin");
  std::string data = RandomBytes(12 * kMiB + 123, 11);
  auto w = S3ObjectWriter::Open(client, uri);
  ASSERT_TRUE(AppendInPieces(*w, data).ok());
  EXPECT_EQ(w->bytes_appended(), data.size());
  auto info = w->Commit();
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(count.creates.load(), 1);
  EXPECT_EQ(count.parts.load(), 3);
  EXPECT_EQ(count.completes.load(), 1);
  EXPECT_EQ(count.puts.load(), 0);
  EXPECT_LE(count.max_in_flight.load(), 2) << "parallel_requests bounds the parts in flight";

  auto back = NewClient()->GetObject(uri);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back.value() == data) << "multipart object differs from the data";
  auto head = NewClient()->HeadObject(uri);
  ASSERT_TRUE(head.ok());
  EXPECT_NE(head->etag.find("-3"), std::string::npos) << "a 3-part multipart ETag: " << head->etag;
  ExpectNoUploadsLeft(*client, uri);
}

TEST(S3ObjectWriterTest, SmallAndOnePartObjectsAreASinglePut) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1000}, 5 * kMiB}) {
    Counting count;
    auto client = NewClient(count.Transport(), SmallParts());
    S3Uri uri = TestObject("small-" + std::to_string(size));
    std::string data = RandomBytes(size, size);
    auto w = S3ObjectWriter::Open(client, uri);
    ASSERT_TRUE(AppendInPieces(*w, data).ok());
    auto info = w->Commit();
    ASSERT_TRUE(info.ok()) << info.status().message();
    EXPECT_EQ(info->size, size);
    EXPECT_EQ(count.creates.load(), 0) << size;
    EXPECT_EQ(count.puts.load(), 1) << size;
    auto back = client->GetObject(uri);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_TRUE(back.value() == data) << size;
  }
}

TEST(S3ObjectWriterTest, AbortLeavesNoObjectAndNoUpload) {
  Counting count;
  auto client = NewClient(count.Transport(), SmallParts());
  S3Uri uri = TestObject("aborted.bin");
  auto w = S3ObjectWriter::Open(client, uri);
  ASSERT_TRUE(AppendInPieces(*w, RandomBytes(11 * kMiB, 12)).ok());
  EXPECT_EQ(count.creates.load(), 1) << "the upload had started";
  ASSERT_TRUE(w->Abort().ok());
  EXPECT_EQ(count.aborts.load(), 1);
  EXPECT_EQ(count.completes.load(), 0);
  EXPECT_FALSE(w->Append("more").ok()) << "an aborted writer refuses data";
  EXPECT_FALSE(w->Commit().ok());
  w.reset();
  EXPECT_EQ(count.aborts.load(), 1) << "destroying an aborted writer does not abort again";
  ExpectNoObject(*client, uri);
  ExpectNoUploadsLeft(*client, uri);
}

TEST(S3ObjectWriterTest, DestroyingAnUncommittedWriterAborts) {
  auto client = NewClient(SharedCurl(), SmallParts());
  S3Uri uri = TestObject("dropped.bin");
  {
    auto w = S3ObjectWriter::Open(client, uri);
    ASSERT_TRUE(AppendInPieces(*w, RandomBytes(16 * kMiB, 13)).ok());
  }
  ExpectNoObject(*client, uri);
  ExpectNoUploadsLeft(*client, uri);
}

TEST(S3ObjectWriterTest, APartFailureFailsTheWriterAndAbortsTheUpload) {
  Counting count;
  count.fail_part = 2;
  auto client = NewClient(count.Transport(), SmallParts(1));
  S3Uri uri = TestObject("failing.bin");
  auto w = S3ObjectWriter::Open(client, uri);
  // Appending goes on until the failure has been seen; Commit reports it at the latest.
  Status st = AppendInPieces(*w, RandomBytes(21 * kMiB, 14));
  if (st.ok()) st = w->Commit().status();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Access denied (403 AccessDenied)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("part 2"), std::string::npos) << st.message();
  EXPECT_EQ(count.aborts.load(), 1) << "the upload is aborted as soon as the failure is seen";
  Status again = w->Append("x");
  EXPECT_EQ(again.message(), st.message()) << "later calls keep returning the error";
  EXPECT_EQ(w->Commit().status().message(), st.message());
  w.reset();
  EXPECT_EQ(count.aborts.load(), 1);
  ExpectNoObject(*client, uri);
  ExpectNoUploadsLeft(*client, uri);
}

TEST(S3ObjectWriterTest, CommitTwiceIsAnError) {
  auto client = NewClient(SharedCurl(), SmallParts());
  auto w = S3ObjectWriter::Open(client, TestObject("once.txt"));
  ASSERT_TRUE(w->Append("hello").ok());
  ASSERT_TRUE(w->Commit().ok());
  EXPECT_FALSE(w->Commit().ok());
  EXPECT_FALSE(w->Append("more").ok());
  EXPECT_TRUE(w->Abort().ok()) << "aborting a committed writer changes nothing";
  EXPECT_EQ(client->GetObject(TestObject("once.txt")).value(), "hello");
}

// Reads the object boto3 wrote and writes it back through the writer; the
// Python side then compares the two with boto3.
TEST(S3ObjectWriterTest, WritesBackWhatBoto3Wrote) {
  auto client = NewClient(SharedCurl(), SmallParts(3));
  S3Uri from{Bucket(), testing::RequiredEnv("CLOUDMERGE_TEST_S3_PY_KEY")};
  S3Uri to{Bucket(), testing::RequiredEnv("CLOUDMERGE_TEST_S3_CPP_KEY")};
  auto head = client->HeadObject(from);
  ASSERT_TRUE(head.ok()) << head.status().message();
  auto w = S3ObjectWriter::Open(client, to);
  Status st = client->GetObjectRange(from, 0, head->size, head->etag, [&](std::string_view p) { return w->Append(p); });
  ASSERT_TRUE(st.ok()) << st.message();
  auto info = w->Commit();
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, head->size);
}

}  // namespace
}  // namespace cloudmerge
