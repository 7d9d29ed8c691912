/* libcrvm.a links on its own (with the system libraries CMake's crvm_static target lists) and
 * works: no libcrvm.so involved. */
#include <stdio.h>
#include <string.h>

#include "crvm.h"

int main(void) {
  const char *v = crvm_version();
  if (!v || !*v) return fprintf(stderr, "crvm_version() is empty\n"), 1;
  if (strstr(crvm_err_str(CRVIDEOSDK_NOT_LOGIN), "not logged in") == NULL)
    return fprintf(stderr, "crvm_err_str(12) = %s\n", crvm_err_str(12)), 1;
  crvm_client *c = NULL;
  if (crvm_create("127.0.0.1:5210", NULL, 0, NULL, &c) != 0 || !c)
    return fprintf(stderr, "crvm_create failed\n"), 1;
  int32_t rc = crvm_get_meetings(c, "");
  crvm_destroy(c);
  if (rc != CRVIDEOSDK_NOT_LOGIN) return fprintf(stderr, "get_meetings = %d\n", rc), 1;
  printf("static libcrvm %s ok\n", v);
  return 0;
}
