/* cli.h: the command line of SPEC §1 (run, validate, plugins, schema,
 * version). Returns the process exit code. */
#ifndef PACER_CLI_H
#define PACER_CLI_H

int pc_cli_main(int argc, char **argv);

#endif
