// A program with one deliberate bug per sanitizer, built only in sanitizer
// builds (tests/CMakeLists.txt). tests/sanitizers/test_sanitizer_harness.py runs
// it to prove that a report fails CI: that the options scripts/sanitize.sh sets
// make the process stop with a non-zero status, and that the e2e harness
// (tests/e2e/conftest.py) fails a test whose background process reported,
// even when the test never looks at that process's exit code.
//
//   sanitizer_canary ok | heap-overflow | leak | signed-overflow | race
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

int counter = 0;  // raced on by "race"

// The index and the addend come from argc so the compiler cannot see the bug
// (and warn, or fold it away) at compile time.
// The size is not a constant either, or UBSan's object-size check reports
// the bug before ASan sees it.
int HeapOverflow(int argc) {
  const int size = 7 + argc;
  char* p = new char[size];
  std::memset(p, 0, size);
  int v = p[size];  // one past the end
  delete[] p;
  return v;
}

void* volatile leaked = nullptr;

int Leak(int argc) {
  leaked = std::malloc(64 * argc);
  leaked = nullptr;  // the only pointer is gone
  return leaked != nullptr;
}

int SignedOverflow(int argc) {
  volatile int x = INT_MAX;
  return x + argc;  // INT_MAX + 2: undefined
}

int Race() {
  std::thread a([] { for (int i = 0; i < 1000; ++i) ++counter; });
  std::thread b([] { for (int i = 0; i < 1000; ++i) ++counter; });
  a.join();
  b.join();
  return counter == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (!std::strcmp(mode, "ok")) return 0;
  if (!std::strcmp(mode, "heap-overflow")) return HeapOverflow(argc - 1) == 42;
  if (!std::strcmp(mode, "leak")) return Leak(argc - 1);
  if (!std::strcmp(mode, "signed-overflow")) return SignedOverflow(argc) == 0;
  if (!std::strcmp(mode, "race")) return Race();
  std::fprintf(stderr, "sanitizer_canary: unknown mode '%s'; use ok, heap-overflow, leak, "
                       "signed-overflow or race\n", mode);
  return 2;
}
