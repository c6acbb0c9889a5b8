/* queue.h: the one intrusive doubly linked list of pacer, in the manner of
 * libuv's src/queue.h. A list is a head node; elements embed a node and are
 * found from it with pc_queue_data (container_of). The list is circular, so
 * insertion and removal are O(1) and never test for NULL, and a node that is
 * not on any list points at itself: pc_queue_remove leaves it so, which makes
 * "is it linked?" (!pc_queue_empty(node)) a question a node can answer and
 * removing twice harmless.
 *
 * Iterating while removing: take the next node before removing the current
 * one (pc_queue_foreach_safe), or pop from the head until the list is empty.
 * Nothing here allocates or can fail. */
#ifndef PACER_QUEUE_H
#define PACER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct pc_queue {
  struct pc_queue *next;
  struct pc_queue *prev;
};

/* The element that embeds node `q` as its member `field`. */
#define pc_queue_data(q, type, field) ((type *)((char *)(q) - offsetof(type, field)))

/* A head (or a node) that is on no list: it points at itself. */
static inline void pc_queue_init(struct pc_queue *q)
{
  q->next = q;
  q->prev = q;
}

/* For a head: the list has no element. For a node: it is on no list. */
static inline bool pc_queue_empty(const struct pc_queue *q)
{
  return q->next == q;
}

/* The first element of a non-empty list. */
static inline struct pc_queue *pc_queue_head(const struct pc_queue *h)
{
  return h->next;
}

static inline void pc_queue_insert_tail(struct pc_queue *h, struct pc_queue *q)
{
  q->next = h;
  q->prev = h->prev;
  q->prev->next = q;
  h->prev = q;
}

static inline void pc_queue_insert_head(struct pc_queue *h, struct pc_queue *q)
{
  q->next = h->next;
  q->prev = h;
  q->next->prev = q;
  h->next = q;
}

/* Unlinks a node (harmless if it is on no list) and leaves it on none. */
static inline void pc_queue_remove(struct pc_queue *q)
{
  q->prev->next = q->next;
  q->next->prev = q->prev;
  pc_queue_init(q);
}

/* Moves every element of list `h` to the end of list `to`; `h` is left
 * empty. */
static inline void pc_queue_move(struct pc_queue *h, struct pc_queue *to)
{
  if (pc_queue_empty(h))
    return;
  struct pc_queue *first = h->next, *last = h->prev;
  first->prev = to->prev;
  to->prev->next = first;
  last->next = to;
  to->prev = last;
  pc_queue_init(h);
}

/* Every node of list `h`, in order; the body must not remove `q`. */
#define pc_queue_foreach(q, h) for ((q) = (h)->next; (q) != (h); (q) = (q)->next)

/* Every node of list `h`, in order; the body may remove `q` (and only `q`).
 * `n` is a struct pc_queue * the loop uses to hold the next node. */
#define pc_queue_foreach_safe(q, n, h) \
  for ((q) = (h)->next, (n) = (q)->next; (q) != (h); (q) = (n), (n) = (q)->next)

#endif
