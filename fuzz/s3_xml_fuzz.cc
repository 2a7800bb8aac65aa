// Fuzz harness: the S3 XML response parsers (aws/s3_xml.h) on any body a server
// (or something pretending to be one) might send. Property: no crash, no
// over-read; a body that is not the expected document yields "not parsed".
// Single-threaded.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/aws/s3_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudmerge::s3xml;
  std::vector<char> buf(data, data + size);  // exact size: over-reads are ASan errors
  std::string_view body(buf.data(), buf.size());
  (void)ParseError(body);
  (void)ParseUploadId(body);
  (void)ParseListObjectsV2(body);
  (void)ParseListMultipartUploads(body);
  std::string etag, modified;
  (void)ParseResultEtag(body, "CompleteMultipartUploadResult", &etag, &modified);
  (void)ParseResultEtag(body, "CopyObjectResult", &etag, nullptr);
  (void)UrlDecode(body);
  (void)StripQuotes(std::string(body));
  return 0;
}
