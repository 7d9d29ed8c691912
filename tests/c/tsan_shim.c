/* Only for ThreadSanitizer builds (CRVM_TSAN): a TSan-instrumented libcrvm, built by a recent
 * rustc/LLVM, calls __tsan_memcpy/__tsan_memmove/__tsan_memset, which gcc 12's libtsan does not
 * define. Newer runtimes define them as the checked memcpy/memmove/memset that libtsan already
 * intercepts, which is what these do. */
#include <string.h>

void *__tsan_memcpy(void *dst, const void *src, size_t n);
void *__tsan_memmove(void *dst, const void *src, size_t n);
void *__tsan_memset(void *dst, int c, size_t n);

void *__tsan_memcpy(void *dst, const void *src, size_t n) { return memcpy(dst, src, n); }
void *__tsan_memmove(void *dst, const void *src, size_t n) { return memmove(dst, src, n); }
void *__tsan_memset(void *dst, int c, size_t n) { return memset(dst, c, n); }
