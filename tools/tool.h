/* Shared pieces of the qkc tool's subcommands. */
#ifndef QKC_TOOLS_TOOL_H
#define QKC_TOOLS_TOOL_H

/* Print a subcommand's help text (the same text docs/cli.md shows). */
void qkc_print_help(const char *command);

/* Join words with single spaces into a new malloc'd string; a single "-"
 * reads all of standard input instead. NULL on allocation failure. */
char *qkc_join_words(int argc, char **argv);

int qkc_cmd_bench(int argc, char **argv);
int qkc_cmd_compile(int argc, char **argv);
int qkc_cmd_targets(int argc, char **argv);
int qkc_cmd_cache(int argc, char **argv);
int qkc_cmd_tune(int argc, char **argv);

#endif
