/* main.c: the pacer binary. Everything lives in the core library (cli.c and
 * below) so tests can drive it; this file only hands over argv. */
#include "cli.h"

int main(int argc, char **argv)
{
  return pc_cli_main(argc, argv);
}
