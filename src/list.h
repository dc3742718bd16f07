/* Intrusive circular doubly-linked list: the one list the library uses (run queue, fd waiter
 * queues, joiners, registry, channel and lock queues). A node that is on no list points at
 * itself, so removal is always safe and "is it linked?" is one compare. */
#ifndef WEFT_LIST_H
#define WEFT_LIST_H

#include <stddef.h>

struct list {
    struct list *next, *prev;
};

#define LIST_INIT(name) { &(name), &(name) }
#define list_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

static inline void list_init(struct list *l) { l->next = l->prev = l; }
static inline int list_empty(const struct list *l) { return l->next == l; }
static inline int list_linked(const struct list *n) { return n->next != n; }

/* Insert n before pos (at the tail when pos is the head). */
static inline void list_insert_before(struct list *pos, struct list *n)
{
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}

static inline void list_push_back(struct list *head, struct list *n) { list_insert_before(head, n); }
static inline void list_push_front(struct list *head, struct list *n) { list_insert_before(head->next, n); }

/* Unlink n and leave it self-linked; harmless on an unlinked node. */
static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

/* Unlink and return the first node, or NULL when the list is empty. */
static inline struct list *list_pop_front(struct list *head)
{
    struct list *n = head->next;
    if (n == head)
        return NULL;
    list_remove(n);
    return n;
}

#define list_for_each(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)
#define list_for_each_safe(it, tmp, head) \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
