/* schema.h: the JSON Schema of the workflow format, for `pacer schema`
 * (schema.c): the embedded base with the action parts of a table of
 * actions. */
#ifndef PACER_SCHEMA_H
#define PACER_SCHEMA_H

#include "model/action.h"

/* The schema as JSON text (draft-07) for the actions of `actions`
 * (NULL-terminated), ending in a newline; malloc'd (the caller frees), or
 * NULL if the embedded base does not parse. */
char *pc_schema_json(const struct pc_action_ops *const *actions);
/* The base as embedded (schema/workflow.schema.json), static storage. */
const char *pc_schema_base_json(void);

#endif
