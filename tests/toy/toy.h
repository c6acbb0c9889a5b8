/* toy.h: the toy action of the boundary test (toy.c). */
#ifndef PACER_TEST_TOY_H
#define PACER_TEST_TOY_H

#include "model/action.h"

extern const struct pc_action_ops pc_toy_ops;
/* How many times the toys' run-wide state was cleaned up. */
extern int pc_toy_cleanups;

#endif
