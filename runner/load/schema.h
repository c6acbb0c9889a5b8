/* schema.h: the JSON Schema of the workflow format, for `pacer schema`. */
#ifndef PACER_SCHEMA_H
#define PACER_SCHEMA_H

/* The schema as JSON text (draft-07), ending in a newline. Static storage. */
const char *pc_schema_json(void);

#endif
