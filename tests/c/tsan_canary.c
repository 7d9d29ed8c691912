/* Only in ThreadSanitizer builds: two threads write one int with no synchronisation. The test
 * passes only if TSan reports the race, which proves the sanitizer is live in this build (a TSan
 * run that could not report anything would prove nothing). */
#include <pthread.h>
#include <stdio.h>

static int shared;

static void *writer(void *arg) {
  shared += *(int *)arg;
  return NULL;
}

int main(void) {
  pthread_t a, b;
  int one = 1, two = 2;
  pthread_create(&a, NULL, writer, &one);
  pthread_create(&b, NULL, writer, &two);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("shared = %d\n", shared);
  return 0;
}
