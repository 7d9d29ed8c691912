/* run_with_server PROGRAM [ARGS...]: starts a test crvm-server (tenant demo/demo-secret among
 * others), runs PROGRAM ARGS... HOST:PORT, stops the server and exits with PROGRAM's status.
 * Used to run the examples as tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  h_server *s = h_server_start(NULL);
  char **args = calloc((size_t)argc + 1, sizeof *args);
  for (int i = 1; i < argc; i++) args[i - 1] = argv[i];
  args[argc - 1] = s->addr;
  pid_t pid = fork();
  if (pid < 0) h_fail(__FILE__, __LINE__, "fork failed");
  if (pid == 0) {
    execv(args[0], args);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  free(args);
  CHECK_INT(h_server_stop(s), 0);
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "%s died of signal %d\n", argv[1], WTERMSIG(status));
    return 1;
  }
  return WEXITSTATUS(status);
}
