// Fuzz harness: ParseS3Events (pipeline/events.h) on any message body a queue,
// SNS or Lambda might deliver. Properties: no crash and no exception (errors are
// Status values); a body over kMaxEventBytes is refused; DecodeEventKey never
// grows a key. Single-threaded.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "cloudmerge/pipeline/events.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cloudmerge;
  std::vector<char> buf(data, data + size);
  std::string_view body(buf.data(), buf.size());
  Result<ParsedEvents> r = ParseS3Events(body);
  if (r.ok()) {
    for (const S3ObjectEvent& e : r->created) (void)e.key.size();
  } else if (r.status().message().empty()) {
    std::fprintf(stderr, "events_fuzz: an error without a message\n");
    std::abort();
  }
  if (DecodeEventKey(body).size() > body.size()) {
    std::fprintf(stderr, "events_fuzz: DecodeEventKey made a key longer\n");
    std::abort();
  }
  return 0;
}
