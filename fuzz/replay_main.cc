// A main() for fuzz harnesses built without libFuzzer (gcc, the CI build):
// feeds every file named on the command line, or found in a directory named
// there, to LLVMFuzzerTestOneInput once. ctest runs it over fuzz/corpus/<harness>/,
// so every input that once crashed a harness is replayed on every CI run.
// Single-threaded.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {
int RunFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", p.c_str());
    return 1;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t runs = 0;
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    fs::path arg(argv[i]);
    if (fs::is_directory(arg)) {
      for (const auto& e : fs::recursive_directory_iterator(arg))
        if (e.is_regular_file()) failures += RunFile(e.path()), ++runs;
    } else {
      failures += RunFile(arg), ++runs;
    }
  }
  std::printf("replay: %zu input(s), %d unreadable\n", runs, failures);
  if (runs == 0) {
    std::fprintf(stderr, "replay: no inputs found: pass corpus files or folders\n");
    return 1;
  }
  return failures ? 1 : 0;
}
