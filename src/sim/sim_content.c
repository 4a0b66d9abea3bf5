/* sim_content.c - the item content file and seeding the store with it.
 *
 * maps/default.items (config key items_file) lists what lies in a fresh
 * world: lines `item KIND X Y QTY`, '#' comments. `tessera serve` seeds
 * the store's world_items table from it once, when the table has never
 * held a row (items outside the configured world are left out); after
 * that the store is the truth (pickups mark rows taken,
 * drops add rows), so a restart never brings back a picked-up item. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_log.h"
#include "sim_int.h"
#include "store.h"

#define CONTENT_MAX_ITEMS 1000000

typedef struct content {
    store_item *items; /* owned */
    size_t n, cap;
} content;

/* Parses the file into c. Returns 0 or -1 with err. */
static int content_read(content *c, const spatial_cellmap *cells, const char *path, char *err,
                        size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot open items file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char word[32], extra;
        int kind, qty;
        float x, y;
        if (sscanf(line, " %31s", word) != 1)
            continue;
        if (strcmp(word, "item") != 0 ||
            sscanf(line, " item %d %f %f %d %c", &kind, &x, &y, &qty, &extra) != 4 || kind < 1 ||
            kind > 255 || qty < 1 || qty > 65535 || !isfinite(x) || !isfinite(y) || x < 0 ||
            y < 0) {
            snprintf(err, err_len,
                     "%s:%d: expected `item KIND X Y QTY` with KIND 1..255, QTY 1..65535 and "
                     "X, Y >= 0",
                     path, lineno);
            rc = -1;
            break;
        }
        /* like obstacles: a content file made for a larger world fits a
         * smaller one, whose players never reach the rest */
        if (x >= (float)cells->world_w || y >= (float)cells->world_h)
            continue;
        if (c->n == CONTENT_MAX_ITEMS) {
            snprintf(err, err_len, "%s:%d: more than %d items", path, lineno, CONTENT_MAX_ITEMS);
            rc = -1;
            break;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            c->items = realloc(c->items, c->cap * sizeof *c->items);
            if (!c->items)
                core_die("out of memory");
        }
        c->items[c->n++] = (store_item){.cell = spatial_cellmap_cell(cells, x, y),
                                        .x = x,
                                        .y = y,
                                        .item_kind = kind,
                                        .quantity = qty};
    }
    fclose(f);
    return rc;
}

int sim_items_seed(struct store *st, const spatial_cellmap *cells, const char *path, int *out_n,
                   char *err, size_t err_len)
{
    *out_n = 0;
    if (!path || !*path)
        return 0;
    content c = {0};
    int rc = content_read(&c, cells, path, err, err_len);
    if (rc != 0)
        goto done;
    int64_t existing = 0;
    if (store_items_count(st, &existing) != STORE_OK) {
        snprintf(err, err_len, "counting world items: %s", store_errmsg(st));
        rc = -1;
        goto done;
    }
    if (existing > 0)
        goto done;
    /* one row at a time on the synchronous connection: a few hundred rows
     * once per world, before any shard runs */
    for (size_t i = 0; i < c.n; i++) {
        int64_t id;
        if (store_item_create(st, &id, &c.items[i]) != STORE_OK) {
            snprintf(err, err_len, "seeding world item %zu of %s: %s", i + 1, path,
                     store_errmsg(st));
            rc = -1;
            goto done;
        }
        (*out_n)++;
    }
done:
    free(c.items);
    return rc;
}
