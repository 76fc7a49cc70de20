/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE request handlers for names, attributes, directories
 * and open files.  Each handler replies exactly once; errors from the
 * index library keep their errno (ENOENT, EIO, ENOMEM stay distinct).
 *
 * The tree is immutable, so inode numbers are the tree's own, lookup
 * counts need no bookkeeping (forget is a no-op) and every reply carries
 * long cache timeouts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

_Static_assert(FUSE_ROOT_ID == INDEX_TREE_ROOT,
	       "the tree's root must be the FUSE root");

static struct fs_ctx *ops_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static int ops_type_bits(enum index_kind kind, mode_t *ret_type)
{
	switch (kind) {
	case INDEX_KIND_FILE:
		*ret_type = S_IFREG;
		return 0;
	case INDEX_KIND_DIR:
		*ret_type = S_IFDIR;
		return 0;
	case INDEX_KIND_SYMLINK:
		*ret_type = S_IFLNK;
		return 0;
	case INDEX_KIND_CHAR:
		*ret_type = S_IFCHR;
		return 0;
	case INDEX_KIND_BLOCK:
		*ret_type = S_IFBLK;
		return 0;
	case INDEX_KIND_FIFO:
		*ret_type = S_IFIFO;
		return 0;
	default:
		/* The tree resolves links and markers; nothing else exists. */
		return -EIO;
	}
}

int fs_attr_to_stat(fuse_ino_t ino, const struct index_tree_attr *attr,
		    struct stat *st)
{
	mode_t type;
	int r;

	r = ops_type_bits(attr->kind, &type);
	if (r < 0)
		return r;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = type | (attr->mode & 07777);
	st->st_nlink = attr->nlink;
	st->st_uid = attr->uid;
	st->st_gid = attr->gid;
	if (attr->kind == INDEX_KIND_CHAR || attr->kind == INDEX_KIND_BLOCK)
		st->st_rdev = makedev(attr->dev_major, attr->dev_minor);
	st->st_size = (off_t)attr->size;
	st->st_blksize = FS_BLOCK_SIZE;
	st->st_blocks = (blkcnt_t)((attr->size + 511) / 512);
	st->st_mtim.tv_sec = attr->mtime_sec;
	st->st_mtim.tv_nsec = attr->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	return 0;
}

static int ops_stat(struct fs_ctx *ctx, fuse_ino_t ino, struct stat *st)
{
	struct index_tree_attr attr;
	int r;

	r = index_tree_attr(ctx->tree, ino, &attr);
	if (r < 0)
		return r;
	return fs_attr_to_stat(ino, &attr, st);
}

static int ops_entry(struct fs_ctx *ctx, fuse_ino_t ino,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->attr_timeout = FS_TIMEOUT;
	e->entry_timeout = FS_TIMEOUT;
	return ops_stat(ctx, ino, &e->attr);
}

static pthread_once_t ops_pipe_once = PTHREAD_ONCE_INIT;
static size_t ops_pipe_bytes; /* set once by ops_pipe_probe() */

/* Finds the largest pipe this process may make: any size with
 * CAP_SYS_RESOURCE, else fs.pipe-max-size (see read_splice_fits). */
static void ops_pipe_probe(void)
{
	const int big = 16 << 20;
	int p[2], n = 0;
	FILE *f;

	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	if (fcntl(p[0], F_SETPIPE_SZ, big) == big) {
		n = big;
	} else {
		f = fopen("/proc/sys/fs/pipe-max-size", "re");
		if (f && fscanf(f, "%d", &n) == 1 && n > 0)
			n = fcntl(p[0], F_SETPIPE_SZ, n);
		if (f)
			fclose(f);
	}
	close(p[0]);
	close(p[1]);
	ops_pipe_bytes = n > 0 ? (size_t)n : 0;
}

/* The probe runs once per process: the mount options and every INIT
 * use its answer. */
static size_t ops_pipe_max(void)
{
	pthread_once(&ops_pipe_once, ops_pipe_probe);
	return ops_pipe_bytes;
}

unsigned int fs_read_max(void)
{
	const size_t room = (FS_SPLICE_PIECES + 2) * (size_t)FS_BLOCK_SIZE;
	size_t pipe_max = ops_pipe_max();

	/* Without a big enough pipe every full-size read would be copied
	 * through a buffer per thread: smaller reads splice instead. */
	if (pipe_max > room && pipe_max < FS_READ_MAX + room)
		return (unsigned int)((pipe_max - room) &
				      ~(size_t)(FS_BLOCK_SIZE - 1));
	return FS_READ_MAX;
}

static void ops_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;
	const unsigned int wanted = FUSE_CAP_SPLICE_WRITE |
				    FUSE_CAP_SPLICE_MOVE |
				    FUSE_CAP_READDIRPLUS |
				    FUSE_CAP_CACHE_SYMLINKS |
				    FUSE_CAP_PARALLEL_DIROPS |
				    FUSE_CAP_ASYNC_READ;

	conn->want |= conn->capable & wanted;
	/* Nothing changes under the mount, so cached pages never need to
	 * be dropped because an mtime moved. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* libfuse turns on the kernel's adaptive mode, which sends plain
	 * READDIR after a directory's first buffer and then one LOOKUP per
	 * name a stat() touches (find -printf %s over 10 directories of
	 * 1000 files: 7980 LOOKUPs).  Attributes cost the same here in
	 * either reply, so always answer with them. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->want & FUSE_CAP_SPLICE_WRITE)
		atomic_store(&ctx->splice_max, ops_pipe_max());
	/* libfuse insists on the max_read of the mount options. */
	conn->max_read = fs_read_max();
	/* Where the kernel can do without OPEN and OPENDIR (an ENOSYS
	 * answer to the first one turns them off for the mount), it keeps
	 * pages and listings cached across opens on its own, and opening
	 * costs no round trip: python importing torch opens 1100 files and
	 * 111 directories.  A size cap needs the opens, to keep an open
	 * file's chunks. */
	if (!ctx->evict.max) {
		atomic_store(&ctx->no_open,
			     (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0);
		atomic_store(&ctx->no_opendir,
			     (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0);
	}
	/* libfuse starts at the kernel's offer, which is also the most the
	 * kernel accepts: keep it. */
	fs_debug("init: capable 0x%x want 0x%x max_readahead %u max_read %u, "
		 "pipes up to %zu bytes%s%s", conn->capable, conn->want,
		 conn->max_readahead, conn->max_read,
		 atomic_load(&ctx->splice_max),
		 atomic_load(&ctx->no_open) ? ", no open" : "",
		 atomic_load(&ctx->no_opendir) ? ", no opendir" : "");
	atomic_store(&ctx->init_done, true);
}

static void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = ops_ctx(req);
	struct fuse_entry_param e;
	uint64_t ino;
	int r;

	fs_debug("lookup %" PRIu64 " '%s'", (uint64_t)parent, name);
	r = index_tree_lookup(ctx->tree, parent, name, strlen(name), &ino);
	if (r == -ENOENT) {
		/* An expected miss: cache it as a negative entry (ino 0),
		 * which saves the many failed lookups of a program
		 * searching its paths. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r >= 0)
		r = ops_entry(ctx, ino, &e);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_entry(req, &e);
}

static void ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void ops_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void ops_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct stat st;
	int r;

	fs_debug("getattr %" PRIu64, (uint64_t)ino);
	r = ops_stat(ops_ctx(req), ino, &st);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_attr(req, &st, FS_TIMEOUT);
}

static void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = ops_ctx(req);
	struct index_tree_attr attr;
	struct index_entry entry;
	int r;

	fs_debug("readlink %" PRIu64, (uint64_t)ino);
	r = index_tree_attr(ctx->tree, ino, &attr);
	if (r >= 0 && attr.kind != INDEX_KIND_SYMLINK)
		r = -EINVAL;
	if (r >= 0 && attr.layer >= ctx->n_layers)
		r = -EIO;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}

	index_reader_entry(ctx->layers[attr.layer].reader, attr.entry, &entry);
	fuse_reply_readlink(req, entry.link);
}

/* Keeps the cached chunks of an open file from eviction. */
static void ops_pin(struct fs_ctx *ctx, const struct index_tree_attr *attr,
		    bool pin)
{
	struct index_entry entry;

	if (attr->kind != INDEX_KIND_FILE || attr->layer >= ctx->n_layers)
		return;
	index_reader_entry(ctx->layers[attr->layer].reader, attr->entry,
			   &entry);
	fs_evict_pin(ctx, attr->layer, entry.chunk_first, entry.chunk_count,
		     pin);
}

static void ops_open(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct index_tree_attr attr;
	int r;

	fs_debug("open %" PRIu64 " flags 0x%x", (uint64_t)ino, fi->flags);
	/* The mount is read-only, so the kernel refuses writes itself. */
	if (atomic_load_explicit(&ops_ctx(req)->no_open,
				 memory_order_relaxed)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	r = index_tree_attr(ops_ctx(req)->tree, ino, &attr);
	if (r >= 0 && attr.kind == INDEX_KIND_DIR)
		r = -EISDIR;
	if (r >= 0 && ((fi->flags & O_ACCMODE) != O_RDONLY ||
		       (fi->flags & O_TRUNC)))
		r = -EROFS;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}

	/* The bytes of an inode never change: pages cached by an earlier
	 * open stay valid. */
	fi->keep_cache = 1;
	fi->noflush = 1;
	ops_pin(ops_ctx(req), &attr, true);
	fuse_reply_open(req, fi);
}

static void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	fs_read_reply(ops_ctx(req), req, ino, size, off);
}

static void ops_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct index_tree_attr attr;

	if (index_tree_attr(ops_ctx(req)->tree, ino, &attr) >= 0)
		ops_pin(ops_ctx(req), &attr, false);
	fuse_reply_err(req, 0);
}

static void ops_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	uint32_t count;
	int r;

	fs_debug("opendir %" PRIu64, (uint64_t)ino);
	if (atomic_load_explicit(&ops_ctx(req)->no_opendir,
				 memory_order_relaxed)) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	r = index_tree_dir_size(ops_ctx(req)->tree, ino, &count);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* Listings never change: let the kernel cache them. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Name and inode at position @pos of @dir: "." and ".." come first. */
static int ops_dir_slot(struct fs_ctx *ctx, fuse_ino_t dir, uint64_t pos,
			const char **ret_name, uint64_t *ret_ino)
{
	if (pos == 0) {
		*ret_name = ".";
		*ret_ino = dir;
		return 0;
	}
	if (pos == 1) {
		*ret_name = "..";
		return index_tree_parent(ctx->tree, dir, ret_ino);
	}
	return index_tree_dir_child(ctx->tree, dir, (uint32_t)(pos - 2),
				    ret_name, ret_ino);
}

/* Adds the entry at @pos to @buf.  *ret_len gets the bytes the entry
 * needs; when that exceeds @size nothing was added. */
static int ops_dir_add(struct fs_ctx *ctx, fuse_req_t req, fuse_ino_t dir,
		       uint64_t pos, bool plus, char *buf, size_t size,
		       size_t *ret_len)
{
	struct fuse_entry_param e;
	const char *name;
	uint64_t ino;
	int r;

	r = ops_dir_slot(ctx, dir, pos, &name, &ino);
	if (r >= 0)
		r = ops_entry(ctx, ino, &e);
	if (r < 0)
		return r;

	/* Offsets are position + 1: the offset names the next entry. */
	if (plus)
		*ret_len = fuse_add_direntry_plus(req, buf, size, name, &e,
						  (off_t)(pos + 1));
	else
		*ret_len = fuse_add_direntry(req, buf, size, name, &e.attr,
					     (off_t)(pos + 1));
	return 0;
}

static void ops_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			       off_t off, bool plus)
{
	struct fs_ctx *ctx = ops_ctx(req);
	struct fs_worker *worker;
	size_t used = 0, n;
	uint32_t count;
	uint64_t pos;
	int r;

	fs_debug("readdir%s %" PRIu64 " off %jd", plus ? "plus" : "",
		 (uint64_t)ino, (intmax_t)off);
	r = off < 0 ? -EINVAL : index_tree_dir_size(ctx->tree, ino, &count);
	if (r >= 0)
		r = fs_worker_get(&worker);
	if (r >= 0)
		r = fs_worker_reserve_reply(worker, size);
	if (r < 0)
		goto err_reply;

	for (pos = (uint64_t)off; pos < (uint64_t)count + 2; pos++) {
		char *buf = (char *)worker->reply.data + used;

		r = ops_dir_add(ctx, req, ino, pos, plus, buf, size - used,
				&n);
		if (r < 0)
			goto err_reply;
		if (n > size - used)
			break;
		used += n;
	}

	fuse_reply_buf(req, (const char *)worker->reply.data, used);
	return;

err_reply:
	fuse_reply_err(req, -r);
}

static void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	ops_readdir_common(req, ino, size, off, false);
}

static void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	ops_readdir_common(req, ino, size, off, true);
}

static void ops_releasedir(fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void ops_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = ops_ctx(req);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = FS_BLOCK_SIZE;
	sv.f_frsize = FS_BLOCK_SIZE;
	sv.f_blocks = (ctx->file_bytes + FS_BLOCK_SIZE - 1) / FS_BLOCK_SIZE;
	sv.f_files = ctx->n_inodes;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = ops_init,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.readlink = ops_readlink,
	.open = ops_open,
	.read = ops_read,
	.release = ops_release,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.releasedir = ops_releasedir,
	.statfs = ops_statfs,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
};
