/* main.c: the pacer binary. Everything lives in the core library (cli.c and
 * below) so tests can drive it; this file only hands over argv. */
#include <signal.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
  /* A closed pipe (a program that exited before reading its stdin, a
   * reader of our stdout that went away) is an error to report, not a
   * reason to die silently. */
  signal(SIGPIPE, SIG_IGN);
  return pc_cli_main(argc, argv);
}
