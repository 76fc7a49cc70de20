/* SPDX-License-Identifier: MIT */
/*
 * context.c - loading an image into the daemon's context before the
 * mount: the layout, each layer's index and blob, the merged tree and
 * the cache directory.
 *
 * Runs in the foreground before any thread exists, so failures are
 * logged (to stderr) with the layer they concern and returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs/fs_internal.h"
#include "fs/log.h"

/* Room for the index library's messages. */
#define CTX_ERR_SIZE 512

static int ctx_open_image(struct fs_ctx *ctx)
{
	char err[CTX_ERR_SIZE] = "";
	int r;

	const struct fs_options *o = ctx->opts;
	struct fs_remote_options ro = {
		.authfile = o->authfile,
		.deadline_ms = o->deadline_s * 1000,
		.stall_ms = o->stall_s * 1000,
		.insecure = o->insecure,
		.verbose = o->http_debug,
	};

	if (fs_remote_is_ref(o->source))
		r = fs_remote_open(o->source, &ro, &ctx->remote, &ctx->image, err,
				sizeof(err));
	else
		r = index_image_open(o->source, &ctx->image, err, sizeof(err));
	if (r < 0) {
		fs_log(LOG_ERR, "cannot open image %s: %s", ctx->opts->source,
		       err[0] ? err : fs_strerror(-r));
		return r;
	}
	return 0;
}

static const char *ctx_cache_dir(const struct fs_ctx *ctx)
{
	return ctx->opts->cache_dir ? ctx->opts->cache_dir :
				      FS_DEFAULT_CACHE_DIR;
}

/* Keeps a fetched index in DIR/indexes/<sha256 of the index>, written to
 * a temp file and renamed; failing to keep it only costs a request at the
 * next mount. */
static void ctx_keep_index(const struct fs_ctx *ctx,
			   const struct index_layer_map *map, const char *path)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	int fd;

	snprintf(dir, sizeof(dir), "%s/indexes", ctx_cache_dir(ctx));
	if (mkdir(ctx_cache_dir(ctx), 0755) < 0 && errno != EEXIST)
		return;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return;
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, map->data, map->size) == (ssize_t)map->size &&
	    fsync(fd) == 0 && close(fd) == 0) {
		if (rename(tmp, path) == 0)
			return;
	} else {
		close(fd);
	}
	unlink(tmp);
}

/*
 * A remote layer's index: from the cache directory when an earlier mount
 * kept it (checked against the manifest's digest like a fetched one),
 * else with one range request.
 */
static int ctx_remote_index(struct fs_ctx *ctx,
			    const struct index_image_layer *desc,
			    struct index_layer_map **ret_map, char *err,
			    size_t err_size)
{
	char path[PATH_MAX], hex[65];
	size_t size;
	char *data;
	int r;

	if (!desc->has_locator)
		return fs_remote_layer_map_open(ctx->remote, desc, ret_map, err,
					     err_size);
	index_hex(desc->locator.sha256, 32, hex);
	snprintf(path, sizeof(path), "%s/indexes/%s", ctx_cache_dir(ctx), hex);
	if (index_read_small_file(path, SIZE_MAX / 2, &data, &size) == 0) {
		if (size == desc->locator.size &&
		    index_layer_map_from_memory(data, &desc->locator,
						desc->digest, ret_map, NULL,
						0) == 0)
			return 0;
		if (size != desc->locator.size)
			free(data);
		fs_log(LOG_WARNING, "ignoring bad cached index %s", path);
	}
	r = fs_remote_layer_map_open(ctx->remote, desc, ret_map, err, err_size);
	if (r >= 0)
		ctx_keep_index(ctx, *ret_map, path);
	return r;
}

static int ctx_open_layer(struct fs_ctx *ctx, uint32_t i)
{
	const struct index_image_layer *desc = &ctx->image->layers[i];
	struct fs_layer *l = &ctx->layers[i];
	char err[CTX_ERR_SIZE] = "";
	int r;

	l->desc = desc;
	if (ctx->remote)
		r = ctx_remote_index(ctx, desc, &l->map, err, sizeof(err));
	else
		r = index_layer_map_open(desc->path,
					 desc->has_locator ? &desc->locator :
							     NULL,
					 &l->map, err, sizeof(err));
	if (r < 0) {
		fs_log(LOG_ERR, "cannot map the index of layer %" PRIu32
		       " '%s': %s", i, desc->digest,
		       err[0] ? err : fs_strerror(-r));
		return r;
	}
	l->reader = l->map->reader;

	l->blob_fd = ctx->remote ? -1 : open(desc->path, O_RDONLY | O_CLOEXEC);
	if (!ctx->remote && l->blob_fd < 0) {
		r = -errno;
		fs_log(LOG_ERR, "cannot open the blob of layer %" PRIu32
		       " '%s': %s", i, desc->digest, fs_strerror(-r));
		return r;
	}

	ctx->blobs_size += desc->size;
	ctx->index_bytes += l->map->size;
	return 0;
}

static int ctx_open_layers(struct fs_ctx *ctx)
{
	uint32_t i;
	int r;

	ctx->n_layers = ctx->image->n_layers;
	ctx->layers = calloc(ctx->n_layers ? ctx->n_layers : 1,
			     sizeof(*ctx->layers));
	ctx->readers = calloc(ctx->n_layers ? ctx->n_layers : 1,
			      sizeof(*ctx->readers));
	if (!ctx->layers || !ctx->readers) {
		fs_log(LOG_ERR, "cannot load %s: %s", ctx->opts->source,
		       fs_strerror(ENOMEM));
		return -ENOMEM;
	}
	for (i = 0; i < ctx->n_layers; i++)
		ctx->layers[i].blob_fd = -1;

	for (i = 0; i < ctx->n_layers; i++) {
		r = ctx_open_layer(ctx, i);
		if (r < 0)
			return r;
		ctx->readers[i] = ctx->layers[i].reader;
		ctx->layers[i].chunk_base = ctx->n_chunks;
		ctx->n_chunks += index_reader_chunk_count(ctx->readers[i]);
	}
	return 0;
}

static int ctx_build_tree(struct fs_ctx *ctx)
{
	struct index_tree_error terr = { 0 };
	struct index_entry e;
	int r;

	r = index_tree_build(ctx->readers, ctx->n_layers, &ctx->tree, &terr);
	if (r == -EINVAL && terr.what && terr.layer < ctx->n_layers) {
		index_reader_entry(ctx->readers[terr.layer], terr.entry, &e);
		fs_log(LOG_ERR, "cannot merge layer %" PRIu32 " '%s' (entry %"
		       PRIu32 " '%.*s'): %s", terr.layer,
		       ctx->layers[terr.layer].desc->digest, terr.entry,
		       (int)e.name_len, e.name, terr.what);
		return r;
	}
	if (r < 0) {
		fs_log(LOG_ERR, "cannot merge the layers of %s: %s",
		       ctx->opts->source, fs_strerror(-r));
		return r;
	}
	ctx->n_inodes = index_tree_inode_count(ctx->tree);
	return 0;
}

/* Sums the sizes of regular files for statfs (each inode once, so hard
 * links do not count twice). */
static int ctx_count_bytes(struct fs_ctx *ctx)
{
	struct index_tree_attr attr;
	uint64_t ino;
	int r;

	for (ino = 1; ino <= ctx->n_inodes; ino++) {
		r = index_tree_attr(ctx->tree, ino, &attr);
		if (r < 0) {
			fs_log(LOG_ERR, "cannot read inode %" PRIu64 ": %s",
			       ino, fs_strerror(-r));
			return r;
		}
		if (attr.kind == INDEX_KIND_FILE)
			ctx->file_bytes += attr.size;
	}
	return 0;
}

int fs_ctx_open(const struct fs_options *opts, struct fs_ctx **ret_ctx)
{
	struct fs_ctx *ctx;
	int r;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		fs_log(LOG_ERR, "cannot allocate the daemon state: %s",
		       fs_strerror(ENOMEM));
		return -ENOMEM;
	}
	ctx->opts = opts;

	r = ctx_open_image(ctx);
	if (r >= 0)
		r = ctx_open_layers(ctx);
	if (r >= 0)
		r = ctx_build_tree(ctx);
	if (r >= 0)
		r = ctx_count_bytes(ctx);
	if (r >= 0)
		r = fs_cache_open(&ctx->cache,
				  ctx_cache_dir(ctx),
				  ctx->layers, ctx->n_layers);
	if (r >= 0)
		r = fs_evict_open(ctx, opts->cache_max);
	if (r >= 0)
		r = fs_fdcache_open(ctx);
	if (r >= 0)
		r = fs_record_open(ctx);
	if (r < 0)
		goto err_free;

	*ret_ctx = ctx;
	return 0;

err_free:
	fs_ctx_free(ctx);
	return r;
}

void fs_ctx_free(struct fs_ctx *ctx)
{
	uint32_t i;

	if (!ctx)
		return;
	fs_prefetch_stop(ctx);
	fs_record_close(ctx);
	fs_evict_close(ctx);
	fs_fdcache_close(ctx);
	fs_cache_close(&ctx->cache);
	index_tree_free(ctx->tree);
	for (i = 0; ctx->layers && i < ctx->n_layers; i++) {
		if (ctx->layers[i].blob_fd >= 0)
			close(ctx->layers[i].blob_fd);
		index_layer_map_free(ctx->layers[i].map);
	}
	free(ctx->layers);
	free(ctx->readers);
	index_image_free(ctx->image);
	fs_remote_free(ctx->remote);
	free(ctx);
}
