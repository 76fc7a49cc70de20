/* SPDX-License-Identifier: MIT */
/*
 * test_index_tree.c - the merged view follows the OCI layer rules:
 * whiteouts and opaque markers hide lower layers only, later entries
 * replace earlier ones, directories merge, hard links share an inode also
 * across layers and keep the content they had when linked, and inode
 * numbers do not depend on anything but the layers.
 */
#include "helpers.h"
#include "index/tree.h"

/* Every layer made lives until the end of the test, where
 * layers_free() releases them so that LeakSanitizer sees none. */
#define MAX_LAYERS 16
static struct index_reader *made[MAX_LAYERS];
static void *made_data[MAX_LAYERS];
static unsigned int n_made;

static struct index_reader *layer(struct index_writer *w)
{
	struct index_reader *r;
	void *data;
	size_t size;

	CHECK(n_made < MAX_LAYERS);
	t_chunks(w, 65536, 4096);
	CHECK(index_writer_finish(w, 65536, &data, &size) == 0);
	CHECK(index_reader_open(data, size, &r, NULL) == 0);
	index_writer_free(w);
	made[n_made] = r;
	made_data[n_made++] = data;
	return r;
}

static void layers_free(void)
{
	for (unsigned int i = 0; i < n_made; i++) {
		index_reader_free(made[i]);
		free(made_data[i]);
	}
	n_made = 0;
}

static uint64_t look(const struct index_tree *t, const char *path)
{
	uint64_t ino = INDEX_TREE_ROOT;
	char buf[256], *save = NULL;

	strcpy(buf, path);
	for (char *c = strtok_r(buf, "/", &save); c;
	     c = strtok_r(NULL, "/", &save))
		if (index_tree_lookup(t, ino, c, strlen(c), &ino) < 0)
			return 0;
	return ino;
}

int main(void)
{
	struct index_writer *w0, *w1, *w2;
	const struct index_reader *l[3];
	struct index_tree *t, *t2;
	struct index_tree_attr a;
	struct index_tree_error terr;
	uint32_t n;

	CHECK(index_writer_new(&w0) == 0);
	t_add(w0, INDEX_KIND_DIR, "", NULL, 0, 0);
	t_add(w0, INDEX_KIND_DIR, "etc", NULL, 0, 0);
	t_add(w0, INDEX_KIND_FILE, "etc/passwd", NULL, 512, 10);
	t_add(w0, INDEX_KIND_FILE, "etc/group", NULL, 1024, 10);
	t_add(w0, INDEX_KIND_DIR, "opt/app", NULL, 0, 0); /* parent missing */
	t_add(w0, INDEX_KIND_FILE, "opt/app/data", NULL, 2048, 5);
	t_add(w0, INDEX_KIND_FILE, "bin/perl", NULL, 4096, 100);
	t_add(w0, INDEX_KIND_HARDLINK, "bin/perl5", "bin/perl", 0, 0);
	t_add(w0, INDEX_KIND_FILE, "x", NULL, 8192, 1);
	t_add(w0, INDEX_KIND_FILE, "x", NULL, 8704, 2); /* duplicate */
	l[0] = layer(w0);

	CHECK(index_writer_new(&w1) == 0);
	t_add(w1, INDEX_KIND_HARDLINK, "etc/passwd-", "etc/passwd", 0, 0);
	t_add(w1, INDEX_KIND_WHITEOUT, "etc/group", NULL, 0, 0);
	t_add(w1, INDEX_KIND_OPAQUE, "opt/app", NULL, 0, 0);
	t_add(w1, INDEX_KIND_FILE, "opt/app/new", NULL, 512, 3);
	t_add(w1, INDEX_KIND_DIR, "etc", NULL, 0, 0); /* merges */
	t_add(w1, INDEX_KIND_DIR, "bin/perl", NULL, 0, 0); /* file -> dir */
	t_add(w1, INDEX_KIND_WHITEOUT, "nothing/here", NULL, 0, 0);
	l[1] = layer(w1);

	CHECK(index_writer_new(&w2) == 0);
	t_add(w2, INDEX_KIND_FILE, "etc/passwd", NULL, 512, 20); /* replaced */
	l[2] = layer(w2);

	CHECK(index_tree_build(l, 3, &t, &terr) == 0);
	CHECK(look(t, "etc/group") == 0);
	CHECK(look(t, "opt/app/data") == 0);
	CHECK(look(t, "opt/app/new") != 0);
	CHECK(look(t, "bin/perl5") != 0);
	CHECK(index_tree_attr(t, look(t, "bin/perl5"), &a) == 0);
	CHECK(a.kind == INDEX_KIND_FILE && a.nlink == 1 && a.size == 100);
	CHECK(index_tree_attr(t, look(t, "bin/perl"), &a) == 0);
	CHECK(a.kind == INDEX_KIND_DIR && a.layer == 1);
	/* passwd- linked the layer-0 passwd: it keeps that content and
	 * no longer shares an inode with the replaced name. */
	CHECK(index_tree_attr(t, look(t, "etc/passwd-"), &a) == 0);
	CHECK(a.layer == 0 && a.size == 10 && a.nlink == 1);
	CHECK(index_tree_attr(t, look(t, "etc/passwd"), &a) == 0);
	CHECK(a.layer == 2 && a.size == 20);
	CHECK(index_tree_attr(t, look(t, "etc"), &a) == 0);
	CHECK(a.layer == 1 && a.nlink == 2);
	CHECK(index_tree_attr(t, look(t, "opt"), &a) == 0);
	CHECK(a.layer == INDEX_TREE_SYNTHETIC && a.kind == INDEX_KIND_DIR);
	CHECK(index_tree_attr(t, look(t, "x"), &a) == 0 && a.size == 2);
	CHECK(index_tree_dir_size(t, INDEX_TREE_ROOT, &n) == 0 && n == 4);
	CHECK(index_tree_lookup(t, look(t, "x"), "a", 1, &(uint64_t){ 0 }) ==
	      -ENOTDIR);

	/* A layer with only layers 0..1 still links both names. */
	CHECK(index_tree_build(l, 2, &t2, &terr) == 0);
	CHECK(index_tree_attr(t2, look(t2, "etc/passwd-"), &a) == 0);
	CHECK(a.nlink == 2 && look(t2, "etc/passwd-") == look(t2, "etc/passwd"));
	index_tree_free(t2);

	/* The same layers give the same numbers. */
	CHECK(index_tree_build(l, 3, &t2, &terr) == 0);
	CHECK(look(t2, "opt/app/new") == look(t, "opt/app/new"));
	CHECK(index_tree_inode_count(t2) == index_tree_inode_count(t));
	index_tree_free(t2);
	index_tree_free(t);

	/* A hard link to nothing is refused, naming the entry. */
	CHECK(index_writer_new(&w0) == 0);
	t_add(w0, INDEX_KIND_HARDLINK, "a", "missing", 0, 0);
	l[0] = layer(w0);
	CHECK(index_tree_build(l, 1, &t, &terr) == -EINVAL);
	CHECK(terr.layer == 0 && terr.entry == 0 && terr.what);

	/* A link whose original a whiteout of the link's own layer removes
	 * keeps the lower inode alive under the new name. */
	CHECK(index_writer_new(&w0) == 0);
	t_add(w0, INDEX_KIND_FILE, "orig", NULL, 512, 7);
	l[0] = layer(w0);
	CHECK(index_writer_new(&w1) == 0);
	t_add(w1, INDEX_KIND_HARDLINK, "alias", "orig", 0, 0);
	t_add(w1, INDEX_KIND_WHITEOUT, "orig", NULL, 0, 0);
	l[1] = layer(w1);
	CHECK(index_tree_build(l, 2, &t, &terr) == 0);
	CHECK(look(t, "orig") == 0);
	CHECK(index_tree_attr(t, look(t, "alias"), &a) == 0);
	CHECK(a.layer == 0 && a.size == 7 && a.nlink == 1);
	index_tree_free(t);

	/* An entry directly below a symlink or a file is refused (it used
	 * to hang below that node, invisible), like deeper ones. */
	CHECK(index_writer_new(&w0) == 0);
	t_add(w0, INDEX_KIND_SYMLINK, "lib", "usr/lib", 0, 0);
	t_add(w0, INDEX_KIND_FILE, "f", NULL, 512, 1);
	l[0] = layer(w0);
	for (int i = 0; i < 2; i++) {
		CHECK(index_writer_new(&w1) == 0);
		t_add(w1, INDEX_KIND_FILE, i ? "f/x" : "lib/x", NULL, 512, 1);
		l[1] = layer(w1);
		CHECK(index_tree_build(l, 2, &t, &terr) == -EINVAL);
		CHECK(terr.layer == 1 && terr.entry == 0 && terr.what);
	}
	layers_free();
	return T_PASS;
}
