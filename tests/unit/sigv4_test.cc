// SigV4 against AWS's published examples: the S3 "Signature Calculations for
// the Authorization Header: Transferring Payload in a Single Chunk" page (GET
// Object, PUT Object, GET Bucket Lifecycle, GET Bucket) and "Authenticating
// Requests: Using Query Parameters" (presigned GET). A signer that matches all
// five byte for byte canonicalises URIs, queries, headers and payloads as S3 does.
#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {
namespace {

constexpr const char* kHost = "examplebucket.s3.amazonaws.com";
constexpr const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

AwsCredentials ExampleCreds() {
  AwsCredentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  c.source = "the AWS documentation";
  return c;
}

std::time_t ExampleTime() {  // 20130524T000000Z
  std::tm tm{};
  tm.tm_year = 2013 - 1900;
  tm.tm_mon = 4;
  tm.tm_mday = 24;
  return timegm(&tm);
}

SigningInput ExampleInput(std::string method, std::string uri) {
  SigningInput in;
  in.method = std::move(method);
  in.host = kHost;
  in.canonical_uri = std::move(uri);
  in.payload_sha256 = kEmptySha256;
  in.region = "us-east-1";
  in.now = ExampleTime();
  return in;
}

std::string HeaderValue(const HttpHeaders& headers, const std::string& name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

int HeaderCount(const HttpHeaders& headers, const std::string& name) {
  int n = 0;
  for (const auto& h : headers) n += h.first == name;
  return n;
}

std::string SignatureOf(const HttpHeaders& headers) {
  std::string auth = HeaderValue(headers, "authorization");
  size_t at = auth.find("Signature=");
  return at == std::string::npos ? auth : auth.substr(at + 10);
}

std::string SignedHeadersOf(const HttpHeaders& headers) {
  std::string auth = HeaderValue(headers, "authorization");
  size_t at = auth.find("SignedHeaders=");
  if (at == std::string::npos) return auth;
  at += 14;
  return auth.substr(at, auth.find(',', at) - at);
}

// ---- the published examples ----

TEST(SigV4Example, GetObjectWithRange) {
  SigningInput in = ExampleInput("GET", "/test.txt");
  in.headers = {{"Range", "bytes=0-9"}};
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(HeaderValue(out, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(HeaderValue(out, "host"), kHost);
  EXPECT_EQ(HeaderValue(out, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(HeaderValue(out, "x-amz-content-sha256"), kEmptySha256);
  EXPECT_EQ(HeaderCount(out, "x-amz-security-token"), 0);
  // The caller's own headers are signed but not handed back.
  EXPECT_EQ(HeaderCount(out, "range"), 0);
  EXPECT_EQ(HeaderCount(out, "Range"), 0);
  EXPECT_EQ(out.size(), 4u);
}

TEST(SigV4Example, PutObjectWithStorageClass) {
  const std::string body = "Welcome to Amazon S3.";
  ASSERT_EQ(Sha256Hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigningInput in = ExampleInput("PUT", "/" + UriEncode("test$file.text", false));
  EXPECT_EQ(in.canonical_uri, "/test%24file.text");
  in.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  in.payload_sha256 = Sha256Hex(body);
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(SignedHeadersOf(out), "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  EXPECT_EQ(SignatureOf(out), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  EXPECT_EQ(HeaderValue(out, "x-amz-content-sha256"), Sha256Hex(body));
}

TEST(SigV4Example, GetBucketLifecycle) {
  SigningInput in = ExampleInput("GET", "/");
  in.query = {{"lifecycle", ""}};
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(SignedHeadersOf(out), "host;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(SignatureOf(out), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4Example, ListObjectsWithQueryGivenOutOfOrder) {
  SigningInput in = ExampleInput("GET", "/");
  in.query = {{"prefix", "J"}, {"max-keys", "2"}};
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(SignatureOf(out), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Example, PresignedGetObject) {
  SigningInput in = ExampleInput("GET", "/test.txt");
  in.payload_sha256.clear();  // presigned: UNSIGNED-PAYLOAD
  std::string url = PresignUrl(in, ExampleCreds(), "https://examplebucket.s3.amazonaws.com", 86400);
  EXPECT_EQ(url,
            "https://examplebucket.s3.amazonaws.com/test.txt"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(SigV4Example, PresignedUrlTakesTheHostFromTheBaseWhenNotGiven) {
  SigningInput in = ExampleInput("GET", "/test.txt");
  in.host.clear();
  in.payload_sha256 = std::string(kUnsignedPayload);
  std::string url = PresignUrl(in, ExampleCreds(), "https://examplebucket.s3.amazonaws.com/", 86400);
  EXPECT_NE(url.find("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            std::string::npos)
      << url;
  EXPECT_EQ(url.rfind("https://examplebucket.s3.amazonaws.com/test.txt?", 0), 0u) << url;
}

// ---- the primitives ----

TEST(SigV4Primitives, Sha256AndHmacKnownAnswers) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2; HmacSha256 returns raw bytes.
  std::string mac = HmacSha256("Jefe", "what do ya want for nothing?");
  EXPECT_EQ(mac.size(), 32u);
  EXPECT_EQ(HexEncode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SigV4Primitives, SigningKeyDerivationMatchesTheAwsExample) {
  // The general SigV4 docs' derived-key example (IAM, 20120215).
  std::string k = HmacSha256("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215");
  k = HmacSha256(k, "us-east-1");
  k = HmacSha256(k, "iam");
  k = HmacSha256(k, "aws4_request");
  EXPECT_EQ(HexEncode(k), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Primitives, UriEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UriEncode("AZaz09-_.~", true), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b/c+d=é", true), "a%20b%2Fc%2Bd%3D%C3%A9");
  EXPECT_EQ(UriEncode("a b/c+d=é", false), "a%20b/c%2Bd%3D%C3%A9");
  EXPECT_EQ(UriEncode("!*'();:@&$,?#[]%", true), "%21%2A%27%28%29%3B%3A%40%26%24%2C%3F%23%5B%5D%25");
  EXPECT_EQ(UriEncode(std::string("\x00\xff", 2), true), "%00%FF");  // upper-case hex, bytes not chars
  EXPECT_EQ(UriEncode("", true), "");
}

TEST(SigV4Primitives, CanonicalQueryStringSortsByEncodedNameThenValue) {
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"a", "1"}}), "a=1&a=x%20y&b=2");
  EXPECT_EQ(CanonicalQueryString({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQueryString({{"uploads", ""}, {"prefix", "a/b"}, {"list-type", "2"}}),
            "list-type=2&prefix=a%2Fb&uploads=");
  // Raw, "~" (0x7E) sorts before "é" (0xC3 0xA9); encoded, "%C3%A9" sorts first.
  EXPECT_EQ(CanonicalQueryString({{"~", "1"}, {"é", "2"}}), "%C3%A9=2&~=1");
  EXPECT_EQ(CanonicalQueryString({{"uploadId", "a+b=c"}, {"partNumber", "10"}}),
            "partNumber=10&uploadId=a%2Bb%3Dc");
  EXPECT_EQ(CanonicalQueryString({}), "");
}

// ---- behaviour beyond the examples ----

TEST(SigV4Request, SessionTokenIsSentAndSigned) {
  AwsCredentials creds = ExampleCreds();
  creds.session_token = "FQoGZXIvYXdzEXAMPLETOKEN==";
  SigningInput in = ExampleInput("GET", "/test.txt");
  HttpHeaders out = SignRequest(in, creds);
  EXPECT_EQ(HeaderValue(out, "x-amz-security-token"), creds.session_token);
  EXPECT_EQ(SignedHeadersOf(out), "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  // The token changes what is signed.
  EXPECT_NE(SignatureOf(out), SignatureOf(SignRequest(in, ExampleCreds())));
}

TEST(SigV4Request, PresignedUrlCarriesTheSessionToken) {
  AwsCredentials creds = ExampleCreds();
  creds.session_token = "tok/en+1=";
  SigningInput in = ExampleInput("GET", "/test.txt");
  std::string url = PresignUrl(in, creds, "https://examplebucket.s3.amazonaws.com", 60);
  EXPECT_NE(url.find("&X-Amz-Security-Token=tok%2Fen%2B1%3D&"), std::string::npos) << url;
  EXPECT_NE(url.find("&X-Amz-Expires=60&"), std::string::npos) << url;
}

TEST(SigV4Request, PresignExpiryIsClampedToWhatS3Accepts) {
  SigningInput in = ExampleInput("GET", "/k");
  EXPECT_NE(PresignUrl(in, ExampleCreds(), "https://h", 10'000'000).find("X-Amz-Expires=604800&"), std::string::npos);
  EXPECT_NE(PresignUrl(in, ExampleCreds(), "https://h", 0).find("X-Amz-Expires=1&"), std::string::npos);
}

TEST(SigV4Request, HeaderNamesAreCaseInsensitiveAndValuesTrimmed) {
  SigningInput a = ExampleInput("PUT", "/k");
  a.headers = {{"X-Amz-Meta-Note", "  two   words "}, {"Content-Type", "text/plain"}};
  SigningInput b = ExampleInput("PUT", "/k");
  b.headers = {{"content-type", "text/plain"}, {"x-amz-meta-note", "two words"}};
  HttpHeaders sa = SignRequest(a, ExampleCreds());
  EXPECT_EQ(SignedHeadersOf(sa), "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-note");
  EXPECT_EQ(SignatureOf(sa), SignatureOf(SignRequest(b, ExampleCreds())));
}

TEST(SigV4Request, CallerSuppliedGeneratedHeaderIsNotRepeated) {
  SigningInput in = ExampleInput("GET", "/test.txt");
  in.headers = {{"Range", "bytes=0-9"}, {"X-Amz-Content-Sha256", kEmptySha256}};
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(HeaderCount(out, "x-amz-content-sha256"), 0);
  // Same canonical request as the documented GET Object example.
  EXPECT_EQ(SignatureOf(out), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Request, NonDefaultPortStaysInTheHostAndEveryInputMatters) {
  SigningInput in = ExampleInput("GET", "/bucket/key");
  in.host = "127.0.0.1:9000";
  HttpHeaders base = SignRequest(in, ExampleCreds());
  EXPECT_EQ(HeaderValue(base, "host"), "127.0.0.1:9000");
  auto differs = [&](SigningInput changed) { return SignatureOf(SignRequest(changed, ExampleCreds())) != SignatureOf(base); };
  SigningInput c = in;
  c.region = "eu-west-1";
  EXPECT_TRUE(differs(c));
  c = in;
  c.canonical_uri = "/bucket/other";
  EXPECT_TRUE(differs(c));
  c = in;
  c.payload_sha256 = std::string(kUnsignedPayload);
  EXPECT_TRUE(differs(c));
  c = in;
  c.now += 1;
  EXPECT_TRUE(differs(c));
}

TEST(SigV4Request, EmptyPayloadHashMeansAnEmptyBody) {
  SigningInput in = ExampleInput("GET", "/test.txt");
  in.headers = {{"Range", "bytes=0-9"}};
  in.payload_sha256.clear();
  HttpHeaders out = SignRequest(in, ExampleCreds());
  EXPECT_EQ(HeaderValue(out, "x-amz-content-sha256"), kEmptySha256);
  EXPECT_EQ(SignatureOf(out), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

}  // namespace
}  // namespace cloudmerge
