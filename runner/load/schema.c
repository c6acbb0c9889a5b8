/* schema.c: the JSON Schema of the workflow format (SPEC.md sections 2 and
 * 3), printed by `pacer schema` for editors (e.g. the YAML language server:
 * `# yaml-language-server: $schema=pacer-workflow.schema.json`). It is
 * draft-07, the draft editors support best, and it is kept as a JSON file,
 * schema/workflow.schema.json, which the build embeds into the binary as
 * text (cmake/embed.cmake, as it embeds the lua/ files): never as a C string.
 *
 * The loader stays the authority: it also checks what a schema cannot
 * (unknown pools, duplicate ids, expressions) and gives positions;
 * tests/check_schema.py keeps the two in agreement by validating every
 * example and case file, and a set of invalid ones, against this schema.
 *
 * The plan: the file is the *base* of the schema, with the action parts
 * kept apart so that they can be generated from the actions' parameter
 * tables (docs/architecture.md, "Adding an action"). Each action's value
 * is described once, in the definition named after its key
 * (definitions.http, definitions.exec, ...), and the step names it in two
 * mechanical places: definitions.step.properties.KEY (a $ref to that
 * definition) and one {"required": [KEY]} branch of definitions.step.oneOf,
 * which makes a step have exactly one action; an action with defaults has
 * properties.defaults.properties.KEY. When the tables exist, this file
 * loses those parts and pc_schema_json() builds them: for each action of
 * the table handed down by the command line, it adds the definition made
 * from the action's parameters and the two (or three) references, then
 * prints the whole. Everything else (top-level keys, modifiers, groups,
 * durations, retry, expect, pools) stays in the base. */
#include "load/schema.h"

#include <stddef.h>

/* Made by cmake/embed.cmake from schema/workflow.schema.json, its only
 * entry: the text, followed by a NUL byte not counted in len. */
struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_schema[];

const char *pc_schema_json(void)
{
  return pc_embedded_schema[0].data;
}
