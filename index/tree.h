/* SPDX-License-Identifier: MIT */
/*
 * tree.h - the merged (flattened) view of an image's layer indexes.
 *
 * Layers are applied lowest first with the OCI rules: a layer's whiteouts
 * and opaque markers remove entries of the layers below it; then its
 * entries are added, a later entry replacing an earlier one of the same
 * path (two directories merge: the new metadata, the old children); a
 * hard link shares the inode of the path it names, as that path is at the
 * time of the link, also when it comes from a lower layer.
 *
 * The tree is immutable once built and safe to read from many threads.
 * Inode numbers run from 1 (the root) and are assigned in a breadth-first
 * walk in name order, so the same layers give the same numbers on every
 * mount.  Names point into the layer indexes, which must outlive the tree.
 */
#ifndef IMGFS_TREE_H
#define IMGFS_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

#define INDEX_TREE_ROOT 1

/* Layer number of an inode the layers never describe: a directory made
 * because an entry's parent was missing. */
#define INDEX_TREE_SYNTHETIC UINT32_MAX

struct index_tree;

/* Names the entry that made index_tree_build() fail. */
struct index_tree_error {
	uint32_t layer;
	uint32_t entry;
	const char *what; /* static string */
};

/*
 * Merges @n_layers layers, @layers[0] lowest.  The readers are borrowed
 * and must outlive the tree.  Returns -EINVAL for an image whose layers
 * cannot be merged (e.g. a hard link to a missing path), filling
 * *ret_error when it is not NULL; -ENOMEM; -EOVERFLOW past 2^32 inodes.
 */
int index_tree_build(const struct index_reader *const *layers,
		     uint32_t n_layers, struct index_tree **ret_tree,
		     struct index_tree_error *ret_error);
void index_tree_free(struct index_tree *tree);

/* Number of inodes; valid inode numbers are 1..count. */
uint64_t index_tree_inode_count(const struct index_tree *tree);

struct index_tree_attr {
	enum index_kind kind; /* never HARDLINK, WHITEOUT or OPAQUE */
	uint32_t mode; /* permission bits only */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;
	uint32_t dev_major;
	uint32_t dev_minor;
	uint64_t size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t layer; /* INDEX_TREE_SYNTHETIC for a made-up directory */
	uint32_t entry; /* the entry in that layer holding data and xattrs */
};

/* Attributes of inode @ino, or -ENOENT if there is no such inode. */
int index_tree_attr(const struct index_tree *tree, uint64_t ino,
		    struct index_tree_attr *ret_attr);

/* Looks @name up in directory @dir.  -ENOENT if absent, -ENOTDIR if @dir
 * is not a directory. */
int index_tree_lookup(const struct index_tree *tree, uint64_t dir,
		      const char *name, size_t name_len, uint64_t *ret_ino);

/* Parent of directory @dir (the root is its own parent). */
int index_tree_parent(const struct index_tree *tree, uint64_t dir,
		      uint64_t *ret_parent);

/* Number of children of directory @dir (without "." and ".."). */
int index_tree_dir_size(const struct index_tree *tree, uint64_t dir,
			uint32_t *ret_count);

/* Child number @pos of @dir in name order: its name (NUL-terminated,
 * borrowed) and inode. */
int index_tree_dir_child(const struct index_tree *tree, uint64_t dir,
			 uint32_t pos, const char **ret_name,
			 uint64_t *ret_ino);

/* Bytes the tree holds on the heap (for the memory budget). */
size_t index_tree_memory(const struct index_tree *tree);

#endif
