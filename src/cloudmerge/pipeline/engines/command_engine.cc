// Command engine: registration, a private folder, posix_spawn into a new
// process group with a clean environment, a poll loop that drains stderr (the
// last bytes kept), watches the time limit and the stop flag, and kills the
// group; placeholders substituted without a shell (no quoting pitfalls, no
// injection through file names).
#include "cloudmerge/pipeline/engines/command_engine.h"
#include "cloudmerge/pipeline/engines/engine.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/pipeline/json_log.h"
#include "cloudmerge/report/safe_text.h"

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

Status Registration(const std::string& what) {
  return Status::InvalidArgument(fmt::format(
      "{}. Register a command as NAME=ARGV, e.g. --allow-command 'v2=python3 /opt/analysis_v2.py {{x}} {{y}} {{out}}' "
      "(or a JSON list: v2=[\"python3\", \"/opt/analysis_v2.py\", \"{{x}}\", \"{{y}}\", \"{{out}}\"]); a job then "
      "asks for it with job.json {{\"engine\": \"command\", \"command\": \"v2\"}}",
      what));
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

// argv[0] as an absolute path: a bare name is looked up on the worker's PATH
// now, once, so that the command's own (clean) PATH cannot change what runs.
Result<std::string> ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    if (program[0] != '/') return Registration(fmt::format("the program \"{}\" must be an absolute path or a name "
                                                           "found on PATH", Quote(program)));
    if (access(program.c_str(), X_OK) != 0)
      return Registration(fmt::format("the program {} is not an executable file", Quote(program)));
    return program;
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty() || dir[0] != '/') continue;  // a relative PATH entry would depend on the folder
    std::string candidate = dir + "/" + program;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return Registration(fmt::format("the program \"{}\" is not on PATH", Quote(program)));
}

Status Register(const std::string& name, std::vector<std::string> argv, CommandEngineOptions* o) {
  if (!ValidName(name))
    return Registration(fmt::format("the command name \"{}\" is not valid (letters, digits, '.', '_', '-'; at most "
                                    "64)",
                                    Quote(name)));
  if (argv.empty() || argv[0].empty()) return Registration(fmt::format("the command \"{}\" has no program", name));
  bool has_out = false;
  for (const auto& a : argv) has_out |= a.find("{out}") != std::string::npos;
  if (!has_out) return Registration(fmt::format("the command \"{}\" never uses {{out}}, where it must write its result", name));
  auto program = ResolveProgram(argv[0]);
  if (!program.ok()) return program.status();
  argv[0] = *program;
  if (o->commands.count(name)) return Registration(fmt::format("the command \"{}\" is registered twice", name));
  o->commands[name] = std::move(argv);
  return Status::OK();
}

Result<std::vector<std::string>> JsonArgv(const nlohmann::json& j) {
  if (!j.is_array()) return Registration("the argv must be a JSON list of strings");
  std::vector<std::string> argv;
  for (const auto& a : j) {
    if (!a.is_string()) return Registration("every entry of the argv must be a string");
    argv.push_back(a.get<std::string>());
  }
  return argv;
}

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
  for (size_t p = 0; (p = arg.find(name, p)) != std::string::npos; p += value.size()) arg.replace(p, name.size(), value);
  return arg;
}

uint64_t CountLines(std::string_view b) {
  uint64_t n = 0;
  for (char c : b) n += c == '\n';
  return n;
}

// The private folder: mkdtemp (0700, a name nobody can guess or plant), removed with what is in it.
struct PrivateDir {
  fs::path path;
  ~PrivateDir() {
    std::error_code e;
    if (!path.empty()) fs::remove_all(path, e);  // symlinks the command made are removed, not followed
  }
};

Status MakePrivateDir(const std::string& parent, PrivateDir* dir) {
  std::string base = parent;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = t && *t ? t : "/tmp";
  }
  std::string tmpl = base + "/cloudmerge-cmd-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    return Status::IOError(fmt::format("cannot create a temporary folder in {}: {}", base, std::strerror(errno)));
  dir->path = tmpl;
  return Status::OK();
}

// The child's environment: fixed basics and the variables the operator passes on.
std::vector<std::string> ChildEnvironment(const CommandEngineOptions& o, const fs::path& dir) {
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir.string(),
                                  "TMPDIR=" + dir.string(), "LANG=C.UTF-8"};
  for (const auto& name : o.pass_env) {
    const char* v = std::getenv(name.c_str());
    if (!v) continue;
    std::string entry = name + "=" + v;
    bool replaced = false;
    for (auto& e : env)
      if (e.compare(0, name.size() + 1, name + "=") == 0) e = entry, replaced = true;
    if (!replaced) env.push_back(entry);
  }
  return env;
}

// Keeps the last `cap` bytes read from a descriptor.
struct TailBuffer {
  size_t cap;
  std::string data;
  bool cut = false;
  // Reads what is there without blocking; false at end of file (or error).
  bool Drain(int fd) {
    char buf[8192];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n > 0) {
        data.append(buf, static_cast<size_t>(n));
        if (data.size() > 2 * cap + sizeof buf) {
          data.erase(0, data.size() - cap);
          cut = true;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && errno == EAGAIN;
    }
  }
  std::string Tail() const {
    std::string t = QuoteLines(data, cap);
    return cut && t.rfind("…", 0) != 0 ? "…\n" + t : t;
  }
};

enum class Ending { kExited, kTimedOut, kStopped };

struct ChildResult {
  Ending ending = Ending::kExited;
  int status = 0;
  double limit_s = 0;
};

struct SpawnSetup {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
};

// Spawns argv in a new process group and waits for it within the limits.
Result<ChildResult> RunChild(const std::vector<std::string>& args, const std::vector<std::string>& env_entries,
                             const fs::path& dir, const CommandEngineOptions& o, const CommandRun& run,
                             TailBuffer* err) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return Status::IOError(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  SpawnSetup s;
  posix_spawn_file_actions_addopen(&s.fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&s.fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&s.fa, pipefd[1], STDERR_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&s.fa, STDERR_FILENO + 1);  // no socket, log or store of the worker
  posix_spawn_file_actions_addchdir_np(&s.fa, dir.c_str());
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setsigdefault(&s.attr, &defaults);
  posix_spawnattr_setpgroup(&s.attr, 0);  // its own group: killed as one; a stop signal to the worker's group misses it
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> a = args, e = env_entries;
  std::vector<char*> argv, envp;
  for (auto& x : a) argv.push_back(x.data());
  argv.push_back(nullptr);
  for (auto& x : e) envp.push_back(x.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &s.fa, &s.attr, argv.data(), envp.data());
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return Status::InvalidInput(fmt::format("the job's command \"{}\" cannot be started: {}. The operator registered "
                                            "it with the program {}: check that it is installed on the worker.",
                                            run.name, std::strerror(rc), Quote(args[0])));
  }
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

  ChildResult result;
  result.limit_s = o.timeout_s;
  int64_t until = NowMillis() + static_cast<int64_t>(o.timeout_s * 1000);
  bool open = true, reaped = false;
  while (!reaped) {
    if (open) {
      pollfd p{pipefd[0], POLLIN, 0};
      poll(&p, 1, 50);
      open = err->Drain(pipefd[0]);
    } else {
      usleep(20000);
    }
    pid_t w = waitpid(pid, &result.status, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    bool stop = run.stop && run.stop->load();
    if (stop || NowMillis() >= until) {
      result.ending = stop ? Ending::kStopped : Ending::kTimedOut;
      kill(-pid, SIGKILL);
      while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
      }
      reaped = true;
    }
  }
  // Whatever the command left running in its group goes with it.
  kill(-pid, SIGKILL);
  if (open) err->Drain(pipefd[0]);  // what is already in the pipe; a process that escaped the group is not waited for
  close(pipefd[0]);
  return result;
}

}  // namespace

Status AddCommand(const std::string& spec, CommandEngineOptions* o) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos) return Registration(fmt::format("\"{}\" has no '='", Quote(spec)));
  std::string name = spec.substr(0, eq), rest = spec.substr(eq + 1);
  size_t first = rest.find_first_not_of(" \t");
  std::vector<std::string> argv;
  if (first != std::string::npos && rest[first] == '[') {
    auto j = nlohmann::json::parse(rest, nullptr, false);
    if (j.is_discarded()) return Registration(fmt::format("the argv of \"{}\" is not valid JSON", Quote(name)));
    auto a = JsonArgv(j);
    if (!a.ok()) return a.status();
    argv = std::move(*a);
  } else {
    std::stringstream words(rest);
    for (std::string w; words >> w;) argv.push_back(w);
  }
  return Register(name, std::move(argv), o);
}

Status AddCommandsJson(const std::string& text, CommandEngineOptions* o) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return Registration("CLOUDMERGE_COMMANDS must be a JSON object {\"NAME\": [argv...], ...}");
  for (auto& [name, value] : j.items()) {
    auto argv = JsonArgv(value);
    if (!argv.ok()) return argv.status();
    CM_RETURN_IF_ERROR(Register(name, std::move(*argv), o));
  }
  return Status::OK();
}

Status RunCommandEngine(Env* env, const CommandEngineOptions& o, const CommandRun& run, const std::string& x_uri,
                        const std::string& y_uri, const std::string& out_uri, MergeStats* stats) {
  if (o.commands.empty())
    return Status::InvalidInput(
        "job.json asks for the command engine, which this worker does not offer: the operator turns it on by "
        "registering commands (serve --allow-command NAME=ARGV, or the function's CLOUDMERGE_COMMANDS); a job can "
        "only name one of them. Remove \"engine\": \"command\" to run the merge itself, or ask the operator.");
  auto it = o.commands.find(run.name);
  if (it == o.commands.end()) {
    std::string names;
    for (const auto& [name, argv] : o.commands) names += (names.empty() ? "" : ", ") + name;
    return Status::InvalidInput(fmt::format("job.json names the command \"{}\", which is not registered on this worker "
                                            "(registered: {}). Use one of those names.",
                                            Quote(run.name, 64), names));
  }
  PrivateDir dir;
  CM_RETURN_IF_ERROR(MakePrivateDir(o.temp_dir, &dir));
  fs::path x = dir.path / "x.tsv", y = dir.path / "y.tsv", out = dir.path / "out.tsv";
  CM_RETURN_IF_ERROR(Fetch(env, x_uri, x));
  CM_RETURN_IF_ERROR(Fetch(env, y_uri, y));

  std::vector<std::string> args;
  for (const auto& a : it->second)
    args.push_back(Substitute(Substitute(Substitute(a, "{x}", x.string()), "{y}", y.string()), "{out}", out.string()));
  TailBuffer err{o.stderr_bytes, {}, false};
  auto child = RunChild(args, ChildEnvironment(o, dir.path), dir.path, o, run, &err);
  if (!child.ok()) return child.status();
  std::string said = err.data.empty() ? "(none)" : "\n" + err.Tail();
  const std::string& name = run.name;
  switch (child->ending) {
    case Ending::kStopped:
      return Status::IOError(fmt::format("the worker was asked to stop while the job's command \"{}\" ran: the "
                                         "command was ended and the job is left for the next worker",
                                         name));
    case Ending::kTimedOut:
      return Status::InvalidInput(fmt::format(
          "the job's command \"{}\" did not finish within its time limit of {:.0f} s and was stopped (its process "
          "group killed). Make it faster, split the input, or ask the operator for a longer limit. The command's "
          "own last error output, at most {} bytes: {}",
          name, child->limit_s, o.stderr_bytes, said));
    case Ending::kExited:
      break;
  }
  int status = child->status;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::InvalidInput(fmt::format(
        "the job's command \"{}\" failed ({}). The command's own last error output, at most {} bytes: {}", name,
        WIFEXITED(status) ? fmt::format("exit code {}", WEXITSTATUS(status))
                          : fmt::format("killed by signal {}", WTERMSIG(status)),
        o.stderr_bytes, said));
  struct stat st {};
  if (lstat(out.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Status::InvalidInput(fmt::format("the job's command \"{}\" finished but wrote no result at {{out}} (a "
                                            "regular file): it must write its result to the path given for {{out}}",
                                            name));
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

namespace {

// The command engine behind the Engine interface (engine.h).
class CommandEngine : public Engine {
 public:
  CommandEngine(Env* env, CommandEngineOptions o, std::atomic<bool>* stop) : env_(env), o_(std::move(o)), stop_(stop) {}
  EngineKind kind() const override { return EngineKind::kCommand; }
  Status Run(const EngineJob& job, EngineResult* result) override {
    Status st = RunCommandEngine(env_, o_, CommandRun{job.spec.command, stop_}, job.x_uri, job.y_uri, job.out_uri,
                                 &result->stats);
    // Stopped, not failed: the next worker runs the job.
    result->stopped = !st.ok() && stop_ && stop_->load();
    return st;
  }

 private:
  Env* env_;
  CommandEngineOptions o_;
  std::atomic<bool>* stop_;
};

}  // namespace

std::unique_ptr<Engine> NewCommandEngine(Env* env, CommandEngineOptions options, std::atomic<bool>* stop) {
  return std::make_unique<CommandEngine>(env, std::move(options), stop);
}

}  // namespace cloudmerge
