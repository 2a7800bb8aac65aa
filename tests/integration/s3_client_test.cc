// S3Client against a live moto server (see tests/e2e/test_s3_client.py), plus
// the few behaviours moto cannot show (AWS addressing, wrong-region answers),
// checked with canned responses. Faults (broken streams, 503s) are injected by
// wrapping the real curl transport.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <string>
#include <vector>

#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/sigv4.h"
#include "s3_test_support.h"

namespace cloudmerge {
namespace {

using testing::Bucket;
using testing::HookTransport;
using testing::NewClient;
using testing::RandomBytes;
using testing::SharedCurl;
using testing::TestConfig;
using testing::TestCredentials;
using testing::TestObject;

HttpResponse Canned(long status, std::string body = "", HttpHeaders headers = {}) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

std::string ErrorXml(const std::string& code, const std::string& extra = "") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>injected " + code +
         "</Message>" + extra + "</Error>";
}

std::string Collect(S3Client& c, const S3Uri& uri, uint64_t offset, uint64_t length, const std::string& etag,
                    Status* st) {
  std::string out;
  *st = c.GetObjectRange(uri, offset, length, etag, [&](std::string_view piece) {
    out.append(piece);
    return Status::OK();
  });
  return out;
}

std::string HeaderOf(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

// --- Offline: URIs, configuration, addressing, messages moto cannot produce ----

TEST(S3UriTest, ParsesBucketAndKey) {
  auto u = S3Uri::Parse("s3://bucket/dir/file.tsv");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->bucket, "bucket");
  EXPECT_EQ(u->key, "dir/file.tsv");
  EXPECT_EQ(S3Uri::Parse("s3a://b/k")->key, "k");
  EXPECT_EQ(S3Uri::Parse("s3n://b/k")->bucket, "b");
  EXPECT_EQ(S3Uri::Parse("s3://b")->key, "");
  EXPECT_EQ(S3Uri::Parse("s3://b/prefix/")->key, "prefix/");
  EXPECT_FALSE(S3Uri::Parse("http://b/k").ok());
  EXPECT_FALSE(S3Uri::Parse("s3:///k").ok());
  EXPECT_TRUE(S3Uri::IsS3("s3://x/y"));
  EXPECT_FALSE(S3Uri::IsS3("/tmp/s3://x"));
}

AwsEnvironment FakeEnv(std::map<std::string, std::string> vars) {
  AwsEnvironment env;
  env.home = "/nonexistent-home-for-tests";
  env.getenv = [vars](const std::string& k) {
    auto it = vars.find(k);
    return it == vars.end() ? std::string() : it->second;
  };
  return env;
}

TEST(S3ConfigTest, EndpointAndAddressingFromEnvironment) {
  S3Config plain = S3Config::FromEnvironment(FakeEnv({{"AWS_REGION", "eu-west-3"}}));
  EXPECT_EQ(plain.region, "eu-west-3");
  EXPECT_EQ(plain.endpoint_url, "");
  EXPECT_FALSE(plain.path_style);

  S3Config both = S3Config::FromEnvironment(
      FakeEnv({{"AWS_ENDPOINT_URL_S3", "http://s3only:1"}, {"AWS_ENDPOINT_URL", "http://global:2"}}));
  EXPECT_EQ(both.endpoint_url, "http://s3only:1");
  EXPECT_TRUE(both.path_style);
  EXPECT_EQ(S3Config::FromEnvironment(FakeEnv({{"AWS_ENDPOINT_URL", "http://global:2"}})).endpoint_url,
            "http://global:2");
  EXPECT_TRUE(S3Config::FromEnvironment(FakeEnv({{"AWS_S3_ADDRESSING_STYLE", "path"}})).path_style);
  EXPECT_EQ(S3Config::FromEnvironment(FakeEnv({{"AWS_MAX_ATTEMPTS", "3"}})).retry.max_attempts, 3);
}

TEST(S3ConfigTest, EndpointFromProfile) {
  std::string dir = ::testing::TempDir() + "/s3cfg-" + std::to_string(::getpid());
  std::string file = dir + "-config";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("[default]\nregion = ap-south-1\nendpoint_url = http://profile-endpoint:9000\n", f);
  std::fclose(f);
  S3Config c = S3Config::FromEnvironment(FakeEnv({{"AWS_CONFIG_FILE", file}}));
  std::remove(file.c_str());
  EXPECT_EQ(c.region, "ap-south-1");
  EXPECT_EQ(c.endpoint_url, "http://profile-endpoint:9000");
  EXPECT_TRUE(c.path_style);
}

// Records the requests and answers each with `response`.
struct Recorder {
  std::vector<HttpRequest> requests;
  std::vector<std::string> bodies;  // request bodies are views: copy them
  std::shared_ptr<HttpTransport> Transport(std::function<HttpResponse(const HttpRequest&, int)> respond) {
    return std::make_shared<HookTransport>(nullptr, [this, respond](const HttpRequest& r, int n, HttpTransport&) {
      requests.push_back(r);
      bodies.emplace_back(r.body);
      return Result<HttpResponse>(respond(r, n));
    });
  }
};

S3Config AwsConfig(const std::string& region) {
  S3Config c;
  c.region = region;
  c.retry.base_delay_ms = 1;
  c.retry.max_delay_ms = 2;
  return c;
}

TEST(S3AddressingTest, VirtualHostedOnAwsPathStyleForDottedBuckets) {
  Recorder rec;
  auto transport = rec.Transport([](const HttpRequest&, int) { return Canned(200, "", {{"etag", "\"e\""}}); });
  S3Client c(AwsConfig("eu-west-1"), NewStaticCredentials(TestCredentials("s")), transport);
  ASSERT_TRUE(c.PutObject({"my-bucket", "dir/a b+c.txt"}, "hello").ok());
  ASSERT_TRUE(c.PutObject({"my.dotted.bucket", "k"}, "hello").ok());
  ASSERT_EQ(rec.requests.size(), 2u);
  EXPECT_EQ(rec.requests[0].url, "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b%2Bc.txt");
  EXPECT_EQ(HeaderOf(rec.requests[0], "host"), "my-bucket.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(HeaderOf(rec.requests[0], "x-amz-content-sha256"), Sha256Hex("hello"));
  EXPECT_NE(HeaderOf(rec.requests[0], "authorization").find("AWS4-HMAC-SHA256"), std::string::npos);
  EXPECT_EQ(rec.requests[1].url, "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/k");
}

TEST(S3ErrorsTest, WrongRegionNamesTheBucketsRegion) {
  Recorder rec;
  // What S3 answers a HEAD sent to the wrong region: 301, no body, the bucket's region in a header.
  auto head301 = rec.Transport(
      [](const HttpRequest&, int) { return Canned(301, "", {{"x-amz-bucket-region", "ap-northeast-1"}}); });
  S3Client c(AwsConfig("us-east-1"), NewStaticCredentials(TestCredentials("s")), head301);
  auto info = c.HeadObject({"tokyo-bucket", "k"});
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("is in region ap-northeast-1"), std::string::npos) << info.status().message();
  EXPECT_NE(info.status().message().find("AWS_REGION=ap-northeast-1"), std::string::npos);

  auto malformed = rec.Transport([](const HttpRequest&, int) {
    return Canned(400, ErrorXml("AuthorizationHeaderMalformed", "<Region>eu-central-1</Region>"));
  });
  S3Client c2(AwsConfig("us-east-1"), NewStaticCredentials(TestCredentials("s")), malformed);
  auto got = c2.GetObject({"frankfurt-bucket", "k"});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("AWS_REGION=eu-central-1"), std::string::npos) << got.status().message();
  EXPECT_EQ(rec.requests.size(), 2u) << "a wrong region is not retried";
}

TEST(S3ErrorsTest, TransportErrorsNeverShowTheQueryString) {
  auto curl = NewCurlTransport(HttpTransportOptions{.connect_timeout_ms = 2000});
  HttpRequest r;
  r.url = "http://127.0.0.1:1/bucket/key?X-Amz-Signature=deadbeefsecret&X-Amz-Credential=AKIAEXAMPLE";
  auto resp = curl->Send(r);
  ASSERT_FALSE(resp.ok());
  EXPECT_EQ(resp.status().code(), Status::Code::kIOError);
  EXPECT_NE(resp.status().message().find("http://127.0.0.1:1/bucket/key"), std::string::npos)
      << resp.status().message();
  EXPECT_EQ(resp.status().message().find("deadbeefsecret"), std::string::npos) << resp.status().message();
  EXPECT_EQ(resp.status().message().find("X-Amz"), std::string::npos) << resp.status().message();
}

// --- Live: the operations against moto ------------------------------------------

TEST(S3ClientTest, PutHeadGetDeleteWithAnAwkwardKey) {
  auto c = NewClient();
  S3Uri uri = TestObject("dir/a b+c%d?é=&x~.txt");
  std::string data = RandomBytes(100000, 1);
  auto put = c->PutObject(uri, data, "text/plain");
  ASSERT_TRUE(put.ok()) << put.status().message();
  EXPECT_EQ(put->size, data.size());
  EXPECT_FALSE(put->etag.empty());

  auto head = c->HeadObject(uri);
  ASSERT_TRUE(head.ok()) << head.status().message();
  EXPECT_EQ(head->size, data.size());
  EXPECT_EQ(head->etag, put->etag);
  EXPECT_EQ(head->etag.find('"'), std::string::npos) << "quotes are stripped";

  auto got = c->GetObject(uri);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got.value(), data);

  ASSERT_TRUE(c->DeleteObject(uri).ok());
  auto gone = c->HeadObject(uri);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Status::Code::kNotFound);
  EXPECT_NE(gone.status().message().find("no object has the key"), std::string::npos) << gone.status().message();
}

TEST(S3ClientTest, RangeReads) {
  auto c = NewClient();
  S3Uri uri = TestObject("ranges.bin");
  std::string data = RandomBytes(1 << 20, 2);
  ASSERT_TRUE(c->PutObject(uri, data).ok());
  auto head = c->HeadObject(uri);
  ASSERT_TRUE(head.ok());
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 1}, {0, data.size()}, {12345, 54321},
                                                                      {data.size() - 10, 10}}) {
    Status st;
    std::string got = Collect(*c, uri, off, len, head->etag, &st);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(got, data.substr(off, len)) << "range " << off << "+" << len;
  }
  Status st;
  Collect(*c, uri, data.size() - 10, 20, "", &st);
  ASSERT_FALSE(st.ok()) << "a range past the end must not pass as complete";
  EXPECT_NE(st.message().find("ends at byte " + std::to_string(data.size())), std::string::npos) << st.message();
}

// Cuts the body of the first `breaks` ranged GETs after `cut_after` bytes.
std::shared_ptr<HookTransport> BreakingTransport(int breaks, uint64_t cut_after, std::vector<std::string>* ranges,
                                                 std::function<void()> between = nullptr) {
  auto broken = std::make_shared<std::atomic<int>>(0);
  return std::make_shared<HookTransport>(
      SharedCurl(), [=](const HttpRequest& r, int, HttpTransport& inner) -> Result<HttpResponse> {
        if (r.method != "GET" || HeaderOf(r, "range").empty()) return inner.Send(r);
        ranges->push_back(HeaderOf(r, "range"));
        if (broken->fetch_add(1) >= breaks) return inner.Send(r);
        HttpRequest cut = r;
        uint64_t passed = 0;
        cut.on_body = [&, cut_after](std::string_view piece) {
          uint64_t n = std::min<uint64_t>(piece.size(), cut_after - passed);
          passed += n;
          if (n > 0) CM_RETURN_IF_ERROR(r.on_body(piece.substr(0, n)));
          if (passed == cut_after) return Status::IOError("injected: connection reset by peer");
          return Status::OK();
        };
        auto res = inner.Send(cut);
        if (between) between();
        return res;
      });
}

TEST(S3ClientTest, ResumesABrokenDownloadFromTheLastByte) {
  auto c = NewClient();
  S3Uri uri = TestObject("resume.bin");
  std::string data = RandomBytes(3 << 20, 3);
  ASSERT_TRUE(c->PutObject(uri, data).ok());
  auto head = c->HeadObject(uri);
  ASSERT_TRUE(head.ok());

  std::vector<std::string> ranges;
  auto faulty = NewClient(BreakingTransport(2, 100000, &ranges));
  Status st;
  const uint64_t off = 1000, len = data.size() - 2000;
  std::string got = Collect(*faulty, uri, off, len, head->etag, &st);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(got == data.substr(off, len)) << "resumed bytes differ (" << got.size() << " bytes)";
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0], "bytes=1000-" + std::to_string(off + len - 1));
  EXPECT_EQ(ranges[1], "bytes=101000-" + std::to_string(off + len - 1));
  EXPECT_EQ(ranges[2], "bytes=201000-" + std::to_string(off + len - 1));
}

TEST(S3ClientTest, ResumeStopsWhenTheObjectChanged) {
  auto c = NewClient();
  S3Uri uri = TestObject("changing.bin");
  std::string data = RandomBytes(1 << 20, 4);
  ASSERT_TRUE(c->PutObject(uri, data).ok());
  auto head = c->HeadObject(uri);
  ASSERT_TRUE(head.ok());
  std::vector<std::string> ranges;
  // The stream breaks, and before the resume someone replaces the object.
  auto replace = [&] { (void)c->PutObject(uri, RandomBytes(1 << 20, 5)); };
  auto faulty = NewClient(BreakingTransport(1, 5000, &ranges, replace));
  Status st;
  Collect(*faulty, uri, 0, data.size(), head->etag, &st);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("the object changed while it was being read"), std::string::npos) << st.message();

  // Without any break, a stale ETag is refused at once.
  Collect(*c, uri, 0, 10, head->etag, &st);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("changed while it was being read"), std::string::npos) << st.message();
}

TEST(S3ClientTest, ADownloadThatKeepsBreakingGivesUp) {
  auto c = NewClient();
  S3Uri uri = TestObject("never.bin");
  ASSERT_TRUE(c->PutObject(uri, RandomBytes(1000, 6)).ok());
  std::vector<std::string> ranges;
  S3Config cfg = TestConfig();
  cfg.retry.max_attempts = 3;
  auto faulty = NewClient(BreakingTransport(1000, 0, &ranges), cfg);
  Status st;
  Collect(*faulty, uri, 0, 1000, "", &st);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(ranges.size(), 3u);
  EXPECT_NE(st.message().find("failed 3 times"), std::string::npos) << st.message();
}

TEST(S3ClientTest, RetriesThrottlingAndServerErrors) {
  std::vector<std::string> seen;
  auto t = std::make_shared<HookTransport>(SharedCurl(), [&](const HttpRequest& r, int n, HttpTransport& inner) {
    seen.push_back(r.method);
    if (n == 0) return Result<HttpResponse>(Canned(503, ErrorXml("SlowDown")));
    if (n == 1) return Result<HttpResponse>(Canned(500, ErrorXml("InternalError")));
    if (n == 2) return Result<HttpResponse>(Status::IOError("injected: connection reset"));
    return inner.Send(r);
  });
  auto c = NewClient(t);
  S3Uri uri = TestObject("retried.txt");
  auto put = c->PutObject(uri, "after three failures");
  ASSERT_TRUE(put.ok()) << put.status().message();
  EXPECT_EQ(t->calls(), 4);
  EXPECT_EQ(NewClient()->GetObject(uri).value(), "after three failures");

  auto always = std::make_shared<HookTransport>(SharedCurl(), [](const HttpRequest&, int, HttpTransport&) {
    return Result<HttpResponse>(Canned(503, ErrorXml("SlowDown")));
  });
  S3Config cfg = TestConfig();
  cfg.retry.max_attempts = 4;
  auto failing = NewClient(always, cfg);
  auto got = failing->GetObject(uri);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(always->calls(), 4);
  EXPECT_NE(got.status().message().find("503 SlowDown"), std::string::npos) << got.status().message();
  EXPECT_NE(got.status().message().find("after 4 attempts"), std::string::npos) << got.status().message();
}

TEST(S3ClientTest, ListsAcrossPages) {
  auto t = std::make_shared<HookTransport>(SharedCurl(), [](const HttpRequest& r, int, HttpTransport& inner) {
    return inner.Send(r);
  });
  auto c = NewClient(t);
  std::string prefix = testing::TestKey("");
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(c->PutObject(TestObject("obj " + std::to_string(i)), std::string(i, 'x')).ok());
  int before = t->calls();
  auto listed = c->ListObjects(Bucket(), prefix, 2);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  EXPECT_EQ(t->calls() - before, 3) << "5 objects, 2 per page";
  ASSERT_EQ(listed->size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*listed)[i].key, prefix + "obj " + std::to_string(i));
    EXPECT_EQ((*listed)[i].size, static_cast<uint64_t>(i));
    EXPECT_FALSE((*listed)[i].etag.empty());
  }
  auto none = c->ListObjects(Bucket(), prefix + "nothing-here/");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(S3ClientTest, MissingBucketAndMissingKeyAreToldApart) {
  auto c = NewClient();
  S3Uri no_bucket{"no-such-bucket-cloudmerge", "k"};
  S3Uri no_key = TestObject("absent");
  for (bool head : {false, true}) {
    Status b = head ? c->HeadObject(no_bucket).status() : c->GetObject(no_bucket).status();
    Status k = head ? c->HeadObject(no_key).status() : c->GetObject(no_key).status();
    EXPECT_EQ(b.code(), Status::Code::kNotFound);
    EXPECT_EQ(k.code(), Status::Code::kNotFound);
    EXPECT_NE(b.message().find("the bucket 'no-such-bucket-cloudmerge' does not exist"), std::string::npos)
        << b.message();
    EXPECT_NE(k.message().find("no object has the key '" + no_key.key + "' in bucket '" + Bucket() + "'"),
              std::string::npos)
        << k.message();
  }
  auto list = c->ListObjects("no-such-bucket-cloudmerge", "");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.status().message().find("NoSuchBucket"), std::string::npos) << list.status().message();
}

TEST(S3ClientTest, WrongSecretNamesTheKeyIdButNotTheSecret) {
  AwsCredentials good = TestCredentials();
  const std::string wrong_secret = "wrongSECRETwrongSECRETwrongSECRET1234";
  auto c = NewClient(SharedCurl(), TestConfig(), TestCredentials(wrong_secret));
  auto got = c->GetObject(TestObject("whatever"));
  ASSERT_FALSE(got.ok());
  const std::string& m = got.status().message();
  EXPECT_NE(m.find("..." + good.access_key_id.substr(good.access_key_id.size() - 4)), std::string::npos) << m;
  EXPECT_NE(m.find("SignatureDoesNotMatch"), std::string::npos) << m;
  EXPECT_NE(m.find("the test environment"), std::string::npos) << m;
  EXPECT_EQ(m.find(wrong_secret), std::string::npos) << m;
  EXPECT_EQ(m.find(good.secret_access_key), std::string::npos) << m;
  EXPECT_EQ(m.find(good.access_key_id), std::string::npos) << "only the last 4 of the key id: " << m;
}

TEST(S3ClientTest, AccessDeniedNamesTheActionAndResource) {
  // An identity that may only list (made by the Python side).
  AwsCredentials limited;
  limited.access_key_id = testing::RequiredEnv("CLOUDMERGE_TEST_S3_LIMITED_KEY_ID");
  limited.secret_access_key = testing::RequiredEnv("CLOUDMERGE_TEST_S3_LIMITED_SECRET");
  limited.source = "environment variables";
  auto c = NewClient(SharedCurl(), TestConfig(), limited);
  S3Uri uri = TestObject("private.txt");
  ASSERT_TRUE(NewClient()->PutObject(uri, "secret data").ok());
  auto got = c->GetObject(uri);
  ASSERT_FALSE(got.ok());
  std::string last4 = limited.access_key_id.substr(limited.access_key_id.size() - 4);
  EXPECT_EQ(got.status().message(),
            "S3 GetObject " + uri.ToString() + ": Access denied (403 AccessDenied) for access key ..." + last4 +
                " from environment variables. Check that this identity may s3:GetObject on arn:aws:s3:::" +
                uri.bucket + "/" + uri.key +
                ". (Without s3:ListBucket on the bucket, S3 also answers 403 for a key that does not exist.)");
  EXPECT_TRUE(c->ListObjects(Bucket(), testing::TestKey("")).ok()) << "listing is allowed";
}

TEST(S3ClientTest, CopyObject) {
  auto c = NewClient();
  S3Uri from = TestObject("src file.bin"), to = TestObject("dst file.bin");
  std::string data = RandomBytes(70000, 7);
  ASSERT_TRUE(c->PutObject(from, data).ok());
  auto info = c->CopyObject(from, to);
  ASSERT_TRUE(info.ok()) << info.status().message();
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(c->GetObject(to).value(), data);
  auto missing = c->CopyObject(TestObject("absent"), to);
  EXPECT_FALSE(missing.ok());
}

TEST(S3ClientTest, PutIfAbsentCreatesOnce) {
  auto c = NewClient();
  S3Uri uri = TestObject("marker");
  auto first = c->PutObjectIfAbsent(uri, "first");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first.value());
  auto second = c->PutObjectIfAbsent(uri, "second");
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second.value());
  EXPECT_EQ(c->GetObject(uri).value(), "first");
}

TEST(S3ClientTest, PresignedUrlFetchesWithoutCredentials) {
  auto c = NewClient();
  S3Uri uri = TestObject("shared result.tsv");
  std::string data = RandomBytes(5000, 8);
  ASSERT_TRUE(c->PutObject(uri, data).ok());
  auto url = c->PresignGet(uri, 3600);
  ASSERT_TRUE(url.ok()) << url.status().message();
  EXPECT_EQ(url->rfind(testing::Endpoint() + "/" + Bucket() + "/", 0), 0u) << *url;
  EXPECT_NE(url->find("X-Amz-Signature="), std::string::npos);
  EXPECT_NE(url->find("X-Amz-Expires=3600"), std::string::npos);
  EXPECT_FALSE(c->PresignGet(uri, 0).ok());
  EXPECT_FALSE(c->PresignGet(uri, 604801).ok());

  HttpRequest r;
  r.url = *url;
  auto plain = NewCurlTransport();  // a fresh transport: no credentials anywhere
  auto got = plain->Send(r);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->status, 200);
  EXPECT_TRUE(got->body == data);

  // The server really checks it: a tampered signature is refused.
  size_t sig = url->find("X-Amz-Signature=") + 16;
  r.url = url->substr(0, sig) + ((*url)[sig] == '0' ? "1" : "0") + url->substr(sig + 1);
  auto tampered = plain->Send(r);
  ASSERT_TRUE(tampered.ok()) << tampered.status().message();
  EXPECT_EQ(tampered->status, 403);
}

TEST(S3ClientTest, MultipartUploadLifecycle) {
  auto c = NewClient();
  S3Uri uri = TestObject("mpu.bin");
  auto id = c->CreateMultipartUpload(uri);
  ASSERT_TRUE(id.ok()) << id.status().message();
  auto uploads = c->ListMultipartUploads(Bucket(), uri.key);
  ASSERT_TRUE(uploads.ok()) << uploads.status().message();
  ASSERT_EQ(uploads->size(), 1u);
  EXPECT_EQ((*uploads)[0], std::make_pair(uri.key, id.value()));
  ASSERT_TRUE(c->AbortMultipartUpload(uri, *id).ok());
  EXPECT_TRUE(c->ListMultipartUploads(Bucket(), uri.key)->empty());
  EXPECT_TRUE(c->AbortMultipartUpload(uri, *id).ok()) << "aborting twice is harmless";

  // Two parts, and a CompleteMultipartUpload answered "200 OK" with an <Error>
  // body the first time (S3 does that): it must be retried, not taken as done.
  std::string p1 = RandomBytes(5 << 20, 9), p2 = RandomBytes(1234, 10);
  int completes = 0;
  auto t = std::make_shared<HookTransport>(SharedCurl(), [&](const HttpRequest& r, int, HttpTransport& inner) {
    if (r.method == "POST" && r.url.find("uploadId=") != std::string::npos && completes++ == 0)
      return Result<HttpResponse>(Canned(200, ErrorXml("InternalError")));
    return inner.Send(r);
  });
  auto cc = NewClient(t);
  auto id2 = cc->CreateMultipartUpload(uri);
  ASSERT_TRUE(id2.ok());
  auto e1 = cc->UploadPart(uri, *id2, 1, p1);
  auto e2 = cc->UploadPart(uri, *id2, 2, p2);
  ASSERT_TRUE(e1.ok() && e2.ok());
  auto done = cc->CompleteMultipartUpload(uri, *id2, {{1, *e1}, {2, *e2}});
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(completes, 2);
  EXPECT_EQ(done->size, p1.size() + p2.size());
  EXPECT_NE(done->etag.find("-2"), std::string::npos) << done->etag;
  EXPECT_TRUE(c->GetObject(uri).value() == p1 + p2);
  EXPECT_TRUE(c->ListMultipartUploads(Bucket(), uri.key)->empty());
}

// The object Python uploaded with boto3 reads back identical, also with many
// parallel ranged reads.
TEST(S3ClientTest, ReadsWhatBoto3Wrote) {
  auto c = NewClient();
  S3Uri uri{Bucket(), testing::RequiredEnv("CLOUDMERGE_TEST_S3_PY_KEY")};
  auto head = c->HeadObject(uri);
  ASSERT_TRUE(head.ok()) << head.status().message();
  std::string all(head->size, '\0');
  const uint64_t piece = 1 << 20;
  std::vector<std::thread> threads;
  std::vector<Status> results((head->size + piece - 1) / piece);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      uint64_t off = i * piece, len = std::min<uint64_t>(piece, head->size - off);
      uint64_t at = off;
      results[i] = c->GetObjectRange(uri, off, len, head->etag, [&](std::string_view p) {
        std::copy(p.begin(), p.end(), all.data() + at);  // disjoint ranges: no lock needed
        at += p.size();
        return Status::OK();
      });
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& st : results) ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(Sha256Hex(all), testing::RequiredEnv("CLOUDMERGE_TEST_S3_PY_SHA256"));
}

}  // namespace
}  // namespace cloudmerge
