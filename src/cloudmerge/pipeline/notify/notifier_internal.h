// Helpers the notifier channels share (notifier.cc, notifier_smtp.cc,
// notifier_sns.cc); not part of the public API. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/base/status.h"

namespace cloudmerge::notifier_internal {

// "Name <a@b.c>" -> "a@b.c"; "a@b.c" -> "a@b.c" (trimmed).
std::string BareAddress(std::string_view address);

// True when `bare` can go into an SMTP command and a header as it is: one
// '@' with text on both sides, no whitespace, control characters or the
// characters that would end or split an address ("<>,;()\"\\").
bool IsUsableAddress(std::string_view bare);

// The channel's own recipients followed by the notification's extra ones,
// reduced to bare addresses, first spelling kept, duplicates removed (compared
// case-insensitively). Addresses that cannot be used are set aside in
// `rejected`, as given, so that a typo in job.json does not stop the message
// reaching everyone else.
struct Recipients {
  std::vector<std::string> valid;
  std::vector<std::string> rejected;
};
Recipients CollectRecipients(const std::vector<std::string>& to, const std::vector<std::string>& extra);

// OK when nothing was rejected; otherwise InvalidInput saying the message went
// out through `channel` (named without its recipients, e.g. the server's URL)
// to the others but not to these.
Status RejectedRecipientsStatus(const Recipients& recipients, const std::string& channel);

// A Status with `code` and `message` (Status only has per-code factories).
Status WithCode(Status::Code code, std::string message);

std::string JoinComma(const std::vector<std::string>& items);

}  // namespace cloudmerge::notifier_internal
