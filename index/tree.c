/* SPDX-License-Identifier: MIT */
/*
 * tree.c - merge layer indexes into one immutable tree.
 *
 * Design notes.
 *
 * Building works on a scratch graph: names (struct bnode) hang from their
 * parent by a singly linked child list and are found through one hash
 * table keyed by (parent, name); each name points at an inode (struct
 * binode) that records which layer entry holds its data.  Hard links are
 * several names of one inode.  A removed name is marked dead and dropped
 * from the hash table but left in its parent's list, which skips it; slots
 * are never reused, so node numbers stay valid while building.
 *
 * Freezing walks the live names breadth first, children sorted by name,
 * numbering inodes as they are first met, and packs the result into two
 * arrays: inodes (indexed by number) and directory entries (each
 * directory's children contiguous and sorted, for binary search).  Only
 * those arrays and the names made up for synthetic directories survive
 * the build.
 *
 * Invariants of the frozen tree: inode 1 is the root directory; every
 * directory's children are sorted by strcmp() order with no duplicates;
 * the inode of a directory entry is never 0 and never past the count.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "tree.h"

#define NONE UINT32_MAX

struct bnode {
	uint32_t parent;
	uint32_t first_child;
	uint32_t next_sibling;
	uint32_t inode;
	const char *name; /* NUL-terminated, borrowed or from the arena */
	uint32_t name_len;
	bool dead;
};

struct binode {
	uint32_t layer;
	uint32_t entry;
	uint32_t number; /* final inode number, 0 until frozen */
	uint8_t kind;
};

struct tree_inode {
	uint32_t layer;
	uint32_t entry;
	uint32_t nlink;
	uint32_t parent; /* directories: the parent's inode number */
	uint32_t child_first; /* directories: range in the dirent array */
	uint32_t child_count;
	uint8_t kind;
};

struct tree_dirent {
	const char *name;
	uint32_t ino;
};

struct index_tree {
	const struct index_reader *const *layers; /* borrowed */
	uint32_t n_layers;
	struct tree_inode *inodes; /* [0] unused; 1..n_inodes */
	uint32_t n_inodes;
	struct tree_dirent *dirents;
	uint32_t n_dirents;
	char **names; /* names of synthetic directories, owned */
	uint32_t n_names;
};

struct builder {
	const struct index_reader *const *layers;
	uint32_t n_layers;
	struct bnode *nodes;
	uint32_t n_nodes, cap_nodes;
	struct binode *inodes;
	uint32_t n_inodes, cap_inodes;
	uint32_t *table; /* node numbers; NONE empty, TOMB removed */
	uint32_t table_cap, table_used; /* used counts tombstones too */
	char **names;
	uint32_t n_names, cap_names;
	struct index_tree_error *error;
	uint32_t cur_layer, cur_entry;
};

#define TOMB (UINT32_MAX - 1)

static int fail(struct builder *b, int err, const char *what)
{
	if (b->error) {
		b->error->layer = b->cur_layer;
		b->error->entry = b->cur_entry;
		b->error->what = what;
	}
	return err;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
	uint32_t n = *cap ? *cap : 1024;
	void *p;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > UINT32_MAX / 2)
			return -EOVERFLOW;
		n *= 2;
	}
	p = realloc(*arr, (size_t)n * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static uint64_t name_hash(uint32_t parent, const char *name, uint32_t len)
{
	return XXH3_64bits_withSeed(name, len, parent);
}

/* ---- hash table of (parent, name) -> node ---- */

static int table_rehash(struct builder *b, uint32_t cap)
{
	uint32_t *old = b->table, old_cap = b->table_cap;

	b->table = malloc((size_t)cap * sizeof(uint32_t));
	if (!b->table) {
		b->table = old;
		return -ENOMEM;
	}
	memset(b->table, 0xff, (size_t)cap * sizeof(uint32_t));
	b->table_cap = cap;
	b->table_used = 0;
	for (uint32_t i = 0; i < old_cap; i++) {
		uint32_t n = old[i];

		if (n == NONE || n == TOMB)
			continue;
		uint64_t h = name_hash(b->nodes[n].parent, b->nodes[n].name,
				       b->nodes[n].name_len);
		uint32_t s = (uint32_t)h & (cap - 1);

		while (b->table[s] != NONE)
			s = (s + 1) & (cap - 1);
		b->table[s] = n;
		b->table_used++;
	}
	free(old);
	return 0;
}

/* Slot of (parent, name), or NONE. */
static uint32_t table_find(const struct builder *b, uint32_t parent,
			   const char *name, uint32_t len)
{
	uint32_t mask = b->table_cap - 1;
	uint32_t s = (uint32_t)name_hash(parent, name, len) & mask;

	for (;;) {
		uint32_t n = b->table[s];

		if (n == NONE)
			return NONE;
		if (n != TOMB && b->nodes[n].parent == parent &&
		    b->nodes[n].name_len == len &&
		    memcmp(b->nodes[n].name, name, len) == 0)
			return s;
		s = (s + 1) & mask;
	}
}

static int table_insert(struct builder *b, uint32_t node)
{
	const struct bnode *n;
	uint32_t mask, s;
	int err;

	if ((uint64_t)(b->table_used + 1) * 10 > (uint64_t)b->table_cap * 7) {
		uint32_t cap = b->table_cap ? b->table_cap : 4096;

		while ((uint64_t)(b->n_nodes + 1) * 10 > (uint64_t)cap * 5) {
			if (cap > UINT32_MAX / 4)
				return -EOVERFLOW;
			cap *= 2;
		}
		err = table_rehash(b, cap);
		if (err < 0)
			return err;
	}
	n = &b->nodes[node];
	mask = b->table_cap - 1;
	s = (uint32_t)name_hash(n->parent, n->name, n->name_len) & mask;
	while (b->table[s] != NONE && b->table[s] != TOMB)
		s = (s + 1) & mask;
	if (b->table[s] == NONE)
		b->table_used++;
	b->table[s] = node;
	return 0;
}

static uint32_t child_find(const struct builder *b, uint32_t parent,
			   const char *name, uint32_t len)
{
	uint32_t s = table_find(b, parent, name, len);

	return s == NONE ? NONE : b->table[s];
}

/* ---- names and inodes ---- */

static int inode_new(struct builder *b, uint32_t layer, uint32_t entry,
		     uint8_t kind, uint32_t *ret)
{
	int err = grow((void **)&b->inodes, &b->cap_inodes, b->n_inodes + 1,
		       sizeof(*b->inodes));

	if (err < 0)
		return err;
	b->inodes[b->n_inodes] = (struct binode){ layer, entry, 0, kind };
	*ret = b->n_inodes++;
	return 0;
}

static int node_new(struct builder *b, uint32_t parent, const char *name,
		    uint32_t len, uint32_t inode, uint32_t *ret)
{
	struct bnode *n;
	int err;

	err = grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1,
		   sizeof(*b->nodes));
	if (err < 0)
		return err;
	n = &b->nodes[b->n_nodes];
	*n = (struct bnode){ parent, NONE, NONE, inode, name, len, false };
	if (parent != NONE) {
		n->next_sibling = b->nodes[parent].first_child;
		b->nodes[parent].first_child = b->n_nodes;
	}
	err = table_insert(b, b->n_nodes);
	if (err < 0)
		return err;
	*ret = b->n_nodes++;
	return 0;
}

static bool node_is_dir(const struct builder *b, uint32_t node)
{
	return b->inodes[b->nodes[node].inode].kind == INDEX_KIND_DIR;
}

/* Marks the live children of @dir removed and pushes them on *stack,
 * linked through their next_sibling fields: @dir's list is dropped, so
 * those links are free to reuse. */
static void push_children(struct builder *b, uint32_t dir, uint32_t *stack)
{
	for (uint32_t c = b->nodes[dir].first_child; c != NONE;) {
		uint32_t next = b->nodes[c].next_sibling;

		if (!b->nodes[c].dead) {
			b->table[table_find(b, dir, b->nodes[c].name,
					    b->nodes[c].name_len)] = TOMB;
			b->nodes[c].dead = true;
			b->nodes[c].next_sibling = *stack;
			*stack = c;
		}
		c = next;
	}
	b->nodes[dir].first_child = NONE;
}

/* Removes everything below directory @dir (an opaque marker). */
static void node_remove_children(struct builder *b, uint32_t dir)
{
	uint32_t stack = NONE;

	push_children(b, dir, &stack);
	while (stack != NONE) {
		uint32_t cur = stack;

		stack = b->nodes[cur].next_sibling;
		push_children(b, cur, &stack);
	}
}

/* Removes @node and everything below it, without allocating.  @node
 * itself stays linked in its parent's list (marked dead). */
static void node_remove(struct builder *b, uint32_t node)
{
	b->table[table_find(b, b->nodes[node].parent, b->nodes[node].name,
			    b->nodes[node].name_len)] = TOMB;
	b->nodes[node].dead = true;
	node_remove_children(b, node);
}

/* Keeps a copy of @len bytes of @name for a synthetic directory. */
static int name_keep(struct builder *b, const char *name, uint32_t len,
		     const char **ret)
{
	char *s;
	int err;

	err = grow((void **)&b->names, &b->cap_names, b->n_names + 1,
		   sizeof(char *));
	if (err < 0)
		return err;
	s = strndup(name, len);
	if (!s)
		return -ENOMEM;
	b->names[b->n_names++] = s;
	*ret = s;
	return 0;
}

/*
 * Walks @path (a normalised path) from the root.  With @create, missing
 * directories are made as synthetic ones.  Returns the node, or NONE in
 * *ret when a component is missing and not created; -ENOTDIR when a
 * component other than the last is not a directory.
 */
static int walk(struct builder *b, const char *path, uint32_t len,
		bool create, uint32_t *ret)
{
	uint32_t cur = 0, start = 0;

	while (start < len) {
		const char *slash = memchr(path + start, '/', len - start);
		uint32_t end = slash ? (uint32_t)(slash - path) : len;
		uint32_t next, ino;
		const char *name;
		int err;

		if (!node_is_dir(b, cur))
			return -ENOTDIR;
		next = child_find(b, cur, path + start, end - start);
		if (next == NONE && !create) {
			*ret = NONE;
			return 0;
		}
		if (next == NONE) {
			err = name_keep(b, path + start, end - start, &name);
			if (err < 0)
				return err;
			err = inode_new(b, INDEX_TREE_SYNTHETIC, 0,
					INDEX_KIND_DIR, &ino);
			if (err < 0)
				return err;
			err = node_new(b, cur, name, end - start, ino, &next);
			if (err < 0)
				return err;
		}
		cur = next;
		start = end + 1;
	}
	*ret = cur;
	return 0;
}

/* ---- applying layers ---- */

static int apply_removal(struct builder *b, const struct index_entry *e)
{
	uint32_t node;
	int err = walk(b, e->name, e->name_len, false, &node);

	/* A whiteout below a non-directory hides nothing. */
	if (err == -ENOTDIR || (err == 0 && node == NONE))
		return 0;
	if (err < 0)
		return fail(b, err, "cannot resolve whiteout");
	if (e->kind == INDEX_KIND_WHITEOUT) {
		if (node != 0)
			node_remove(b, node);
		return 0;
	}
	if (node_is_dir(b, node))
		node_remove_children(b, node);
	return 0;
}

/*
 * Links @name to the inode its target names now, or, when a whiteout of
 * this layer removed that name before the layer's entries were applied,
 * to the inode it named below this layer (@lower, NONE if none): a tar
 * extractor meets the link before the whiteout deletes its original, so
 * the data lives on under the new name.
 */
static int add_hardlink(struct builder *b, const struct index_entry *e,
			uint32_t parent, uint32_t existing, const char *name,
			uint32_t len, uint32_t lower)
{
	uint32_t target, ino, node;
	int err;

	err = walk(b, e->link, e->link_len, false, &target);
	if (err < 0 && err != -ENOTDIR)
		return err;
	if (err == 0 && target != NONE && node_is_dir(b, target))
		return fail(b, -EINVAL, "hard link to a directory");
	if (err == 0 && target != NONE)
		ino = b->nodes[target].inode;
	else if (lower != NONE)
		ino = lower;
	else
		return fail(b, -EINVAL, "hard link to a path that does not exist");
	if (existing != NONE && b->nodes[existing].inode == ino)
		return 0;
	if (existing != NONE)
		node_remove(b, existing);
	return node_new(b, parent, name, len, ino, &node);
}

/*
 * The inode each hard link of layer @r names before the layer's
 * whiteouts apply, for add_hardlink(); *ret is NULL when the layer has
 * no whiteouts (then nothing can go missing).  The caller frees *ret.
 */
static int lower_link_targets(struct builder *b,
			      const struct index_reader *r, uint32_t n,
			      uint32_t **ret)
{
	struct index_entry e;
	uint32_t *lower = NULL, node;
	bool removals = false;

	*ret = NULL;
	for (uint32_t i = 0; i < n && !removals; i++) {
		index_reader_entry(r, i, &e);
		removals = e.kind == INDEX_KIND_WHITEOUT ||
			   e.kind == INDEX_KIND_OPAQUE;
	}
	if (!removals)
		return 0;
	lower = malloc((size_t)n * sizeof(*lower));
	if (!lower)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		lower[i] = NONE;
		index_reader_entry(r, i, &e);
		if (e.kind != INDEX_KIND_HARDLINK ||
		    walk(b, e.link, e.link_len, false, &node) < 0 ||
		    node == NONE || node_is_dir(b, node))
			continue;
		lower[i] = b->nodes[node].inode;
	}
	*ret = lower;
	return 0;
}

static int apply_entry(struct builder *b, const struct index_entry *e,
		       uint32_t lower)
{
	uint32_t parent = 0, existing, ino, node, len = e->name_len;
	const char *slash, *name = e->name;
	int err;

	if (len == 0) {
		/* The root: only a directory entry reaches here. */
		b->inodes[b->nodes[0].inode].layer = b->cur_layer;
		b->inodes[b->nodes[0].inode].entry = b->cur_entry;
		return 0;
	}
	slash = memrchr(e->name, '/', len);
	if (slash) {
		err = walk(b, e->name, (uint32_t)(slash - e->name), true,
			   &parent);
		if (err == -ENOTDIR || (err == 0 && !node_is_dir(b, parent)))
			return fail(b, -EINVAL,
				    "parent of entry is a symlink or not a directory");
		if (err < 0)
			return err;
		name = slash + 1;
		len = e->name_len - (uint32_t)(name - e->name);
	}
	existing = child_find(b, parent, name, len);

	if (e->kind == INDEX_KIND_HARDLINK)
		return add_hardlink(b, e, parent, existing, name, len, lower);
	if (e->kind == INDEX_KIND_DIR && existing != NONE &&
	    node_is_dir(b, existing)) {
		ino = b->nodes[existing].inode;
		b->inodes[ino].layer = b->cur_layer;
		b->inodes[ino].entry = b->cur_entry;
		return 0;
	}
	if (existing != NONE)
		node_remove(b, existing);
	err = inode_new(b, b->cur_layer, b->cur_entry, (uint8_t)e->kind, &ino);
	if (err < 0)
		return err;
	return node_new(b, parent, name, len, ino, &node);
}

static int apply_layer(struct builder *b, uint32_t layer)
{
	const struct index_reader *r = b->layers[layer];
	uint32_t n = index_reader_entry_count(r), *lower;
	struct index_entry e;
	int err;

	b->cur_layer = layer;
	err = lower_link_targets(b, r, n, &lower);
	if (err < 0)
		return err;
	/* A layer's whiteouts hide only what the layers below it hold, so
	 * they all go before any of its own entries. */
	for (uint32_t i = 0; i < n; i++) {
		index_reader_entry(r, i, &e);
		if (e.kind != INDEX_KIND_WHITEOUT && e.kind != INDEX_KIND_OPAQUE)
			continue;
		b->cur_entry = i;
		err = apply_removal(b, &e);
		if (err < 0)
			goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		index_reader_entry(r, i, &e);
		if (e.kind == INDEX_KIND_WHITEOUT || e.kind == INDEX_KIND_OPAQUE)
			continue;
		b->cur_entry = i;
		err = apply_entry(b, &e, lower ? lower[i] : NONE);
		if (err < 0)
			goto out;
	}
out:
	free(lower);
	return err;
}

/* ---- freezing ---- */

static int dirent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_dirent *)a)->name,
		      ((const struct tree_dirent *)b)->name);
}

/* Appends the live children of @node to the dirents, sorted, numbering
 * inodes met for the first time (@binode_of maps a number back to its
 * build inode).  Numbers are handed out in visiting order, so the inode
 * array doubles as the breadth-first queue. */
static int freeze_dir(struct builder *b, struct index_tree *t, uint32_t node,
		      uint32_t dir_ino, uint32_t *binode_of,
		      uint32_t *cap_dirents)
{
	uint32_t first = t->n_dirents, count = 0;
	int err;

	for (uint32_t c = b->nodes[node].first_child; c != NONE;
	     c = b->nodes[c].next_sibling) {
		if (b->nodes[c].dead)
			continue;
		err = grow((void **)&t->dirents, cap_dirents,
			   t->n_dirents + 1, sizeof(*t->dirents));
		if (err < 0)
			return err;
		/* ino holds the build node until it is numbered below. */
		t->dirents[t->n_dirents++] =
			(struct tree_dirent){ b->nodes[c].name, c };
		count++;
	}
	/* t->dirents is still NULL while every directory so far is empty,
	 * and NULL + 0 is undefined behaviour. */
	if (count > 1)
		qsort(t->dirents + first, count, sizeof(*t->dirents),
		      dirent_cmp);
	t->inodes[dir_ino].child_first = first;
	t->inodes[dir_ino].child_count = count;

	for (uint32_t i = first; i < first + count; i++) {
		uint32_t bino = b->nodes[t->dirents[i].ino].inode;
		struct binode *bi = &b->inodes[bino];

		if (bi->number == 0) {
			bi->number = ++t->n_inodes;
			binode_of[bi->number] = bino;
			t->inodes[bi->number] = (struct tree_inode){
				bi->layer, bi->entry, 0, dir_ino, 0, 0, bi->kind
			};
		}
		t->dirents[i].ino = bi->number;
		t->inodes[bi->number].nlink++;
		if (bi->kind == INDEX_KIND_DIR)
			t->inodes[dir_ino].nlink++;
	}
	return 0;
}

static int freeze(struct builder *b, struct index_tree *t)
{
	uint32_t *node_of = NULL, *binode_of = NULL, cap_dirents = 0;
	uint32_t root = b->nodes[0].inode;
	int err = 0;

	t->inodes = calloc((size_t)b->n_inodes + 1, sizeof(*t->inodes));
	node_of = calloc((size_t)b->n_inodes + 1, sizeof(uint32_t));
	binode_of = calloc((size_t)b->n_inodes + 1, sizeof(uint32_t));
	if (!t->inodes || !node_of || !binode_of) {
		err = -ENOMEM;
		goto out;
	}
	/* A directory has exactly one name, so its inode maps to a node. */
	for (uint32_t n = 0; n < b->n_nodes; n++)
		if (!b->nodes[n].dead && node_is_dir(b, n))
			node_of[b->nodes[n].inode] = n;
	b->inodes[root].number = t->n_inodes = INDEX_TREE_ROOT;
	binode_of[INDEX_TREE_ROOT] = root;
	t->inodes[INDEX_TREE_ROOT] = (struct tree_inode){
		b->inodes[root].layer, b->inodes[root].entry, 1,
		INDEX_TREE_ROOT, 0, 0, INDEX_KIND_DIR
	};
	for (uint32_t ino = 1; ino <= t->n_inodes; ino++) {
		if (t->inodes[ino].kind != INDEX_KIND_DIR)
			continue;
		t->inodes[ino].nlink++; /* its "." */
		err = freeze_dir(b, t, node_of[binode_of[ino]], ino, binode_of,
				 &cap_dirents);
		if (err < 0)
			goto out;
	}
out:
	free(node_of);
	free(binode_of);
	return err;
}

static void builder_free(struct builder *b)
{
	free(b->nodes);
	free(b->inodes);
	free(b->table);
}

static int builder_init(struct builder *b)
{
	uint32_t ino, node;
	int err;

	err = inode_new(b, INDEX_TREE_SYNTHETIC, 0, INDEX_KIND_DIR, &ino);
	if (err < 0)
		return err;
	return node_new(b, NONE, "", 0, ino, &node);
}

int index_tree_build(const struct index_reader *const *layers,
		     uint32_t n_layers, struct index_tree **ret_tree,
		     struct index_tree_error *ret_error)
{
	struct builder b = { .layers = layers, .n_layers = n_layers,
			     .error = ret_error };
	struct index_tree *t;
	int err;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->layers = layers;
	t->n_layers = n_layers;

	err = builder_init(&b);
	if (err < 0)
		goto err_free;
	for (uint32_t l = 0; l < n_layers; l++) {
		err = apply_layer(&b, l);
		if (err < 0)
			goto err_free;
	}
	err = freeze(&b, t);
	if (err < 0)
		goto err_free;

	t->names = b.names;
	t->n_names = b.n_names;
	builder_free(&b);
	*ret_tree = t;
	return 0;

err_free:
	t->names = b.names;
	t->n_names = b.n_names;
	builder_free(&b);
	index_tree_free(t);
	return err;
}

void index_tree_free(struct index_tree *tree)
{
	if (!tree)
		return;
	for (uint32_t i = 0; i < tree->n_names; i++)
		free(tree->names[i]);
	free(tree->names);
	free(tree->inodes);
	free(tree->dirents);
	free(tree);
}

uint64_t index_tree_inode_count(const struct index_tree *tree)
{
	return tree->n_inodes;
}

static const struct tree_inode *get_inode(const struct index_tree *t,
					  uint64_t ino)
{
	if (ino == 0 || ino > t->n_inodes)
		return NULL;
	return &t->inodes[ino];
}

int index_tree_attr(const struct index_tree *tree, uint64_t ino,
		    struct index_tree_attr *ret_attr)
{
	const struct tree_inode *in = get_inode(tree, ino);
	struct index_tree_attr *a = ret_attr;
	struct index_entry e;

	if (!in)
		return -ENOENT;
	memset(a, 0, sizeof(*a));
	a->kind = (enum index_kind)in->kind;
	a->nlink = in->nlink;
	a->layer = in->layer;
	a->entry = in->entry;
	if (in->layer == INDEX_TREE_SYNTHETIC) {
		a->mode = 0755;
		return 0;
	}
	index_reader_entry(tree->layers[in->layer], in->entry, &e);
	a->mode = e.mode;
	a->uid = e.uid;
	a->gid = e.gid;
	a->dev_major = e.dev_major;
	a->dev_minor = e.dev_minor;
	a->size = e.kind == INDEX_KIND_SYMLINK ? e.link_len : e.size;
	a->mtime_sec = e.mtime_sec;
	a->mtime_nsec = e.mtime_nsec;
	return 0;
}

static const struct tree_inode *get_dir(const struct index_tree *t,
					uint64_t dir, int *ret_err)
{
	const struct tree_inode *in = get_inode(t, dir);

	*ret_err = 0;
	if (!in)
		*ret_err = -ENOENT;
	else if (in->kind != INDEX_KIND_DIR)
		*ret_err = -ENOTDIR;
	return *ret_err ? NULL : in;
}

int index_tree_lookup(const struct index_tree *tree, uint64_t dir,
		      const char *name, size_t name_len, uint64_t *ret_ino)
{
	const struct tree_inode *in;
	uint32_t lo, hi;
	int err;

	in = get_dir(tree, dir, &err);
	if (!in)
		return err;
	lo = in->child_first;
	hi = in->child_first + in->child_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const char *s = tree->dirents[mid].name;
		int c = strncmp(s, name, name_len);

		if (c == 0 && s[name_len] != '\0')
			c = 1;
		if (c == 0) {
			*ret_ino = tree->dirents[mid].ino;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -ENOENT;
}

int index_tree_parent(const struct index_tree *tree, uint64_t dir,
		      uint64_t *ret_parent)
{
	const struct tree_inode *in;
	int err;

	in = get_dir(tree, dir, &err);
	if (!in)
		return err;
	*ret_parent = in->parent;
	return 0;
}

int index_tree_dir_size(const struct index_tree *tree, uint64_t dir,
			uint32_t *ret_count)
{
	const struct tree_inode *in;
	int err;

	in = get_dir(tree, dir, &err);
	if (!in)
		return err;
	*ret_count = in->child_count;
	return 0;
}

int index_tree_dir_child(const struct index_tree *tree, uint64_t dir,
			 uint32_t pos, const char **ret_name,
			 uint64_t *ret_ino)
{
	const struct tree_inode *in;
	int err;

	in = get_dir(tree, dir, &err);
	if (!in)
		return err;
	if (pos >= in->child_count)
		return -ENOENT;
	*ret_name = tree->dirents[in->child_first + pos].name;
	*ret_ino = tree->dirents[in->child_first + pos].ino;
	return 0;
}

size_t index_tree_memory(const struct index_tree *tree)
{
	size_t m = sizeof(*tree);

	m += ((size_t)tree->n_inodes + 1) * sizeof(struct tree_inode);
	m += (size_t)tree->n_dirents * sizeof(struct tree_dirent);
	m += (size_t)tree->n_names * sizeof(char *);
	return m;
}
