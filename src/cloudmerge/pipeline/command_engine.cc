// Command engine: temporary folder, posix_spawn with stderr captured to a
// file, placeholder substitution without a shell (no quoting pitfalls, no
// injection through file names).
#include "cloudmerge/pipeline/command_engine.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

Status Fetch(Env* env, const std::string& uri, const fs::path& dest) {
  std::ofstream out(dest, std::ios::binary);
  auto stream = env->OpenStream(uri);  // S3 objects, compressed files: in pieces
  if (!stream.ok()) return stream.status();
  if (*stream) {
    CM_RETURN_IF_ERROR(ForEachPiece(stream->get(), 8 << 20, [&](std::string_view piece) {
      out.write(piece.data(), static_cast<std::streamsize>(piece.size()));
      return Status::OK();
    }));
  } else {
    auto in = env->ReadFile(uri);
    if (!in.ok()) return in.status();
    std::string_view b = (*in)->bytes();
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
  }
  if (!out.flush()) return Status::IOError(fmt::format("cannot write {} (is the temporary folder full?)", dest.string()));
  return Status::OK();
}

std::string Substitute(std::string arg, const std::string& name, const std::string& value) {
  for (size_t p; (p = arg.find(name)) != std::string::npos;) arg.replace(p, name.size(), value);
  return arg;
}

std::string Tail(const fs::path& p, size_t max_bytes) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

uint64_t CountLines(std::string_view b) {
  uint64_t n = 0;
  for (char c : b) n += c == '\n';
  return n;
}

}  // namespace

Status RunCommandEngine(Env* env, const std::string& x_uri, const std::string& y_uri, const std::string& out_uri,
                        const std::vector<std::string>& command, MergeStats* stats) {
  std::error_code ec;
  fs::path dir = fs::temp_directory_path(ec) / fmt::format("cloudmerge-cmd-{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError(fmt::format("cannot create a temporary folder {}: {}", dir.string(), ec.message()));
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(d, e);
    }
  } cleanup{dir};

  fs::path x = dir / "x.tsv", y = dir / "y.tsv", out = dir / "out.tsv", err = dir / "stderr.txt";
  CM_RETURN_IF_ERROR(Fetch(env, x_uri, x));
  CM_RETURN_IF_ERROR(Fetch(env, y_uri, y));

  std::vector<std::string> args;
  for (const auto& a : command)
    args.push_back(Substitute(Substitute(Substitute(a, "{x}", x.string()), "{y}", y.string()), "{out}", out.string()));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    return Status::InvalidInput(fmt::format("the job's command \"{}\" cannot be started: {}. Check the program name "
                                            "in job.json's \"command\" and that it is installed on the worker.",
                                            command[0], std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::InvalidInput(fmt::format(
        "the job's command \"{}\" failed ({}). Its last error output:\n{}", command[0],
        WIFEXITED(status) ? fmt::format("exit code {}", WEXITSTATUS(status))
                          : fmt::format("killed by signal {}", WTERMSIG(status)),
        Tail(err, 2000)));
  if (!fs::exists(out))
    return Status::InvalidInput(fmt::format("the job's command \"{}\" finished but wrote no result at {{out}}: "
                                            "it must write its result to the path given for {{out}}",
                                            command[0]));
  auto result = env->ReadFile(out.string());
  if (!result.ok()) return result.status();
  auto dest = AtomicOutput::Open(env, out_uri);
  if (!dest.ok()) return dest.status();
  std::string_view bytes = (*result)->bytes();
  CM_RETURN_IF_ERROR((*dest)->Append(bytes));
  CM_RETURN_IF_ERROR((*dest)->Commit());
  uint64_t lines = CountLines(bytes);
  stats->output_rows = lines > 0 ? lines - 1 : 0;  // less the header
  return Status::OK();
}

}  // namespace cloudmerge
