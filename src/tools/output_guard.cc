// See output_guard.h. Identities are strings so that local files and S3
// objects compare the same way; a name with no identity (a pipe, a device, a
// path that cannot be resolved: its own error comes later, still before any
// work) collides with nothing.
#include "tools/output_guard.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "cloudmerge/aws/s3_client.h"

namespace cloudmerge_cli {
namespace {

using cloudmerge::Env;
using cloudmerge::S3Uri;
using cloudmerge::Status;

std::optional<std::string> FileId(const struct stat& st) {
  if (!S_ISREG(st.st_mode)) return std::nullopt;  // written in place or not at all: nothing to destroy
  return fmt::format("file:{}:{}", st.st_dev, st.st_ino);
}

std::optional<std::string> DescriptorId(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return std::nullopt;
  return FileId(st);
}

std::optional<std::string> S3Id(const std::string& path) {
  auto uri = S3Uri::Parse(path);
  if (!uri.ok()) return std::nullopt;
  return "s3:" + uri->bucket + "/" + uri->key;
}

std::string LocalPath(const std::string& path) { return path.rfind("file://", 0) == 0 ? path.substr(7) : path; }

std::optional<std::string> InputId(const std::string& path) {
  if (path == "-") return DescriptorId(STDIN_FILENO);
  if (S3Uri::IsS3(path)) return S3Id(path);
  struct stat st {};
  if (::stat(LocalPath(path).c_str(), &st) != 0) return std::nullopt;
  return FileId(st);
}

std::optional<std::string> OutputId(Env* env, const std::string& path) {
  if (S3Uri::IsS3(path)) return S3Id(path);
  auto target = env->ResolveOutput(path);
  if (!target.ok()) return std::nullopt;
  if (target->fd >= 0) return DescriptorId(target->fd);
  if (target->direct) return std::nullopt;
  struct stat st {};
  if (::stat(target->path.c_str(), &st) == 0) return FileId(st);
  // Not there yet: the name it will have, its directory's links resolved.
  const std::string& t = target->path;
  size_t slash = t.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : t.substr(0, slash);
  char real[PATH_MAX];
  if (::realpath(dir.c_str(), real) == nullptr) return std::nullopt;
  return fmt::format("new:{}/{}", real, slash == std::string::npos ? t : t.substr(slash + 1));
}

std::string Describe(const NamedPath& p, bool output) {
  if (p.path == "-") return output ? "standard output" : "standard input";
  return p.role + " " + p.path;
}

}  // namespace

Status CheckOutputsAreDistinct(Env* env, const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs) {
  std::vector<std::pair<std::string, const NamedPath*>> seen;
  for (const NamedPath& in : inputs) {
    if (auto id = InputId(in.path)) seen.emplace_back(*id, &in);
  }
  size_t n_inputs = seen.size();
  for (const NamedPath& out : outputs) {
    auto id = OutputId(env, out.path);
    if (!id) continue;
    for (size_t i = 0; i < seen.size(); ++i) {
      if (seen[i].first != *id) continue;
      const NamedPath& other = *seen[i].second;
      if (i < n_inputs) {
        return Status::InvalidArgument(fmt::format(
            "{} is the same file as {}: writing it would destroy that input, so nothing was done. Write to "
            "another file.",
            Describe(out, true), Describe(other, false)));
      }
      return Status::InvalidArgument(fmt::format(
          "{} and {} are the same file: one would replace the other, so nothing was done. Give them different "
          "names.",
          Describe(other, true), Describe(out, true)));
    }
    seen.emplace_back(*id, &out);
  }
  return Status::OK();
}

}  // namespace cloudmerge_cli
