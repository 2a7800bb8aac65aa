// Only in the Lambda build (CLOUDMERGE_STATIC_RUNTIME): GCC 12's static
// libstdc++ (random.o, pulled in by its own string instantiations) calls
// arc4random, which glibc has only since 2.36; provided.al2023 has 2.34.
// Defining it here, on getrandom(2), keeps the binary within GLIBC_2.34.
#include <sys/random.h>

#include <cstdint>

extern "C" uint32_t arc4random(void) {
  uint32_t v = 0;
  while (getrandom(&v, sizeof(v), 0) != static_cast<ssize_t>(sizeof(v))) {
  }
  return v;
}
