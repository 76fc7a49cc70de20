/* SPDX-License-Identifier: MIT */
/*
 * remote.c - images and blob ranges from OCI registries and web servers,
 * through libcurl.
 *
 * Everything a server sends is untrusted: documents are capped in size
 * and checked against their digest, a range answer must say (in
 * Content-Range) that it starts where we asked, a 200 answer to a range
 * request is taken as the whole blob and cut, and blob bytes are checked
 * by the caller against the index.  A server can make us wait until the
 * deadline, never make us return bytes it did not send for that offset.
 *
 * Authentication follows the registry token protocol: a request answered
 * 401 with "WWW-Authenticate: Bearer realm=...,service=...,scope=..." gets
 * a token from the realm (with the authfile's credentials, if any) and is
 * sent again; "Basic" gets the credentials.  A later 401 or 403 (an
 * expired token in a mount that lives for days) does the same once more.
 * libcurl does not pass our Authorization header on to another host when
 * it follows a redirect (to blob storage), so presigned URLs see none.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "config.h"
#include "fs/remote.h"

#define DOC_MAX (4u << 20) /* manifests, indexes, configs, tokens */
#define INDEX_FETCH_MAX (512u << 20) /* one layer's index */
#define TAIL_FETCH (64u << 10)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 10000
#define AUTH_TRIES 2
#define RETRY_AFTER_MAX_S 86400 /* longer than any deadline */

#define ACCEPT_MANIFESTS                                                  \
	"Accept: application/vnd.oci.image.index.v1+json, "                 \
	"application/vnd.oci.image.manifest.v1+json, "                      \
	"application/vnd.docker.distribution.manifest.list.v2+json, "       \
	"application/vnd.docker.distribution.manifest.v2+json"

enum remote_kind {
	REMOTE_REGISTRY, /* docker:// */
	REMOTE_LAYOUT, /* http(s):// serving an OCI layout */
};

struct fs_remote {
	struct index_docs docs; /* first: remote.c's document source */
	enum remote_kind kind;
	char *base; /* "http://host:port" or the layout's URL */
	char *host; /* "host[:port]", for the authfile and messages */
	char *repo; /* registry repository */
	char *reference; /* tag or digest; NULL for a layout's default */
	char *basic; /* base64 "user:pass" from the authfile, or NULL */
	unsigned int deadline_ms;
	unsigned int stall_ms;
	bool verbose;

	pthread_mutex_t auth_lock; /* guards the two fields below */
	char *auth_header; /* "Authorization: ..." or NULL */
	unsigned int auth_gen; /* bumped each time auth_header changes */

	pthread_mutex_t handles_lock; /* guards handles, n_handles */
	CURL **handles; /* every thread's handle, freed with the remote */
	size_t n_handles;
	pthread_key_t handle_key; /* the calling thread's CURL handle */

	struct fs_remote_stats stats;
};

/* One request and what its answer has shown so far. */
struct xfer {
	struct fs_remote *rm;
	const char *url;
	const char *accept; /* extra header, or NULL */
	const char *auth; /* fixed Authorization line: no refresh */
	bool no_auth; /* send no credentials of the remote's */
	bool sent_auth; /* this try carried an Authorization line */

	/* A range read: [off, off + len) into dst; got bytes are in. */
	bool is_range;
	uint64_t off;
	size_t len;
	uint8_t *dst;
	size_t got;

	/* A document read: the whole body, at most doc_max bytes. */
	char *doc;
	size_t doc_len;
	size_t doc_max;

	/* The current answer (reset at each status line: redirects). */
	long status;
	bool body_started;
	uint64_t pos; /* blob offset of the next body byte */
	bool has_content_range;
	uint64_t cr_start;
	long retry_after_s;
	char www_auth[1024];
	char err_body[200];
	size_t err_body_len;
	const char *fatal; /* why the body was refused, permanently */
	bool complete;

	/* Stall detection: libcurl's low-speed check averages over several
	 * seconds, so a body that stops dead is noticed here instead. */
	uint64_t last_byte_ms; /* when the last byte (or the try) came */
	bool stalled; /* aborted for want of bytes: worth another try */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

#define stat_add(rm, field, n)                                            \
	atomic_fetch_add_explicit(&(rm)->stats.field, (uint64_t)(n),      \
				  memory_order_relaxed)

/* ---- references ---- */

bool fs_remote_is_ref(const char *ref)
{
	return strncmp(ref, "docker://", 9) == 0 ||
	       strncmp(ref, "http://", 7) == 0 ||
	       strncmp(ref, "https://", 8) == 0;
}

static bool host_is_loopback(const char *host)
{
	return strncmp(host, "localhost", 9) == 0 ||
	       strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]", 5) == 0;
}

/* A repository name as the distribution spec allows it: lowercase
 * alphanumerics and separators, never "..". */
static bool repo_name_ok(const char *s)
{
	if (!*s || strstr(s, "..") || *s == '/' || s[strlen(s) - 1] == '/')
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
		    !strchr("._-/", *s))
			return false;
	return true;
}

static bool tag_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

/* docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] */
static int parse_docker_ref(struct fs_remote *rm, const char *ref, bool insecure,
			    char *err, size_t err_size)
{
	const char *s = ref + 9, *slash = strchr(s, '/'), *at, *colon;
	uint8_t raw[32];

	if (!slash || slash == s)
		goto bad;
	rm->host = strndup(s, (size_t)(slash - s));
	if (!rm->host)
		return -ENOMEM;
	s = slash + 1;
	at = strchr(s, '@');
	colon = strrchr(s, ':');
	if (at) {
		rm->repo = strndup(s, (size_t)(at - s));
		rm->reference = strdup(at + 1);
		if (rm->reference && index_digest_parse(rm->reference, raw) < 0)
			goto bad;
	} else if (colon && !strchr(colon, '/')) {
		rm->repo = strndup(s, (size_t)(colon - s));
		rm->reference = strdup(colon + 1);
		if (rm->reference && !tag_ok(rm->reference))
			goto bad;
	} else {
		rm->repo = strdup(s);
		rm->reference = strdup("latest");
	}
	if (!rm->repo || !rm->reference)
		return -ENOMEM;
	if (!repo_name_ok(rm->repo))
		goto bad;
	if (asprintf(&rm->base, "%s://%s",
		     insecure || host_is_loopback(rm->host) ? "http" : "https",
		     rm->host) < 0)
		return -ENOMEM;
	rm->kind = REMOTE_REGISTRY;
	return 0;
bad:
	return index_seterr(err, err_size, -EINVAL,
		      "bad registry reference '%s' (want docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX])",
		      ref);
}

/* http(s)://HOST[:PORT]/PATH[:TAG]: a tag is a colon in the last path
 * element. */
static int parse_layout_ref(struct fs_remote *rm, const char *ref, char *err,
			    size_t err_size)
{
	const char *hs = strstr(ref, "://") + 3, *slash = strchr(hs, '/');
	const char *last = strrchr(ref, '/'), *colon;
	size_t n;

	if (slash == hs || !*hs)
		return index_seterr(err, err_size, -EINVAL,
			      "bad layout URL '%s' (want http://HOST/PATH[:TAG])",
			      ref);
	rm->host = slash ? strndup(hs, (size_t)(slash - hs)) : strdup(hs);
	colon = slash && last >= slash ? strchr(last, ':') : NULL;
	n = colon ? (size_t)(colon - ref) : strlen(ref);
	while (n > 0 && ref[n - 1] == '/')
		n--;
	rm->base = strndup(ref, n);
	if (colon) {
		rm->reference = strdup(colon + 1);
		if (rm->reference && !tag_ok(rm->reference))
			return index_seterr(err, err_size, -EINVAL,
				      "bad tag in '%s'", ref);
	}
	if (!rm->host || !rm->base || (colon && !rm->reference))
		return -ENOMEM;
	rm->kind = REMOTE_LAYOUT;
	return 0;
}

/* ---- credentials ---- */

/* Does the authfile key @key name @host?  Keys are "host[:port]", or URLs
 * like "https://host/v1/". */
static bool auth_key_matches(const char *key, const char *host)
{
	const char *k = strstr(key, "://");
	size_t n = strlen(host);

	k = k ? k + 3 : key;
	return strncmp(k, host, n) == 0 && (k[n] == '\0' || k[n] == '/');
}

static char *b64_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s,
				(int)n);
	return out;
}

static int load_authfile(struct fs_remote *rm, const char *path, char *err,
			 size_t err_size)
{
	struct json_object *root, *auths, *v;
	char *data = NULL, *joined = NULL;
	const char *auth = NULL, *user = NULL, *pass = NULL;
	int r;

	r = index_read_small_file(path, DOC_MAX, &data, NULL);
	if (r < 0)
		return index_seterr(err, err_size, r, "cannot read authfile '%s': %s",
			      path, strerror(-r));
	root = json_tokener_parse(data);
	free(data);
	if (!root || !json_object_object_get_ex(root, "auths", &auths) ||
	    !json_object_is_type(auths, json_type_object)) {
		json_object_put(root);
		return index_seterr(err, err_size, -EINVAL,
			      "authfile '%s' has no \"auths\" object", path);
	}
	json_object_object_foreach(auths, key, entry) {
		if (!auth_key_matches(key, rm->host) ||
		    !json_object_is_type(entry, json_type_object))
			continue;
		if (json_object_object_get_ex(entry, "auth", &v) &&
		    json_object_is_type(v, json_type_string))
			auth = json_object_get_string(v);
		if (json_object_object_get_ex(entry, "username", &v) &&
		    json_object_is_type(v, json_type_string))
			user = json_object_get_string(v);
		if (json_object_object_get_ex(entry, "password", &v) &&
		    json_object_is_type(v, json_type_string))
			pass = json_object_get_string(v);
		break;
	}
	r = 0;
	if (auth && *auth) {
		rm->basic = strdup(auth);
	} else if (user && pass) {
		if (asprintf(&joined, "%s:%s", user, pass) < 0)
			joined = NULL;
		rm->basic = joined ? b64_encode(joined) : NULL;
		free(joined);
	}
	if ((auth && *auth) || (user && pass))
		r = rm->basic ? 0 : -ENOMEM;
	json_object_put(root);
	return r;
}

/* ---- per-thread handles ---- */

static CURL *thread_handle(struct fs_remote *rm)
{
	CURL *h = pthread_getspecific(rm->handle_key), **grown;

	if (h)
		return h;
	h = curl_easy_init();
	if (!h)
		return NULL;
	pthread_mutex_lock(&rm->handles_lock);
	grown = realloc(rm->handles, (rm->n_handles + 1) * sizeof(*grown));
	if (grown) {
		rm->handles = grown;
		rm->handles[rm->n_handles++] = h;
	}
	pthread_mutex_unlock(&rm->handles_lock);
	if (!grown) {
		curl_easy_cleanup(h);
		return NULL;
	}
	pthread_setspecific(rm->handle_key, h);
	return h;
}

/* ---- one request ---- */

/* libcurl hands over a header line of @n bytes with no NUL after it, so
 * nothing here may read past @n. */
static bool header_is(const char *line, size_t n, const char *name,
		      const char **ret_value)
{
	const char *end = line + n;
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	line += k + 1;
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	*ret_value = line;
	return true;
}

/* Copies header value @v (up to CR/LF) into @out. */
static void header_copy(const char *v, const char *end, char *out,
			size_t out_size)
{
	size_t n = 0;

	while (v + n < end && v[n] != '\r' && v[n] != '\n')
		n++;
	if (n >= out_size)
		n = out_size - 1;
	memcpy(out, v, n);
	out[n] = '\0';
}

/*
 * Seconds of a Retry-After value, capped: the deadline ends any wait
 * sooner, but xfer_run() adds the wait to the clock, and a value near
 * LONG_MAX seconds wrapped that sum into a sleep of centuries.
 */
static long retry_after_parse(const char *digits)
{
	long s = strtol(digits, NULL, 10);

	return s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	const char *v, *end = line + n;
	char buf[128];

	if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new answer (the previous one was a redirect or 100). */
		const char *sp = memchr(line, ' ', n);

		/* strtol() needs a terminated copy of the status code. */
		if (sp)
			header_copy(sp + 1, end, buf, sizeof(buf));
		x->status = sp ? strtol(buf, NULL, 10) : 0;
		x->body_started = false;
		x->has_content_range = false;
		x->retry_after_s = -1;
		x->www_auth[0] = '\0';
		x->err_body_len = 0;
		x->err_body[0] = '\0';
	} else if (header_is(line, n, "Content-Range", &v)) {
		unsigned long long a, b;

		header_copy(v, end, buf, sizeof(buf));
		if (sscanf(buf, "bytes %llu-%llu/", &a, &b) == 2 && a <= b) {
			x->has_content_range = true;
			x->cr_start = a;
		}
	} else if (header_is(line, n, "Retry-After", &v)) {
		header_copy(v, end, buf, sizeof(buf));
		if (isdigit((unsigned char)buf[0]))
			x->retry_after_s = retry_after_parse(buf);
	} else if (header_is(line, n, "WWW-Authenticate", &v)) {
		header_copy(v, end, x->www_auth, sizeof(x->www_auth));
	}
	return n;
}

/* The first body byte of an answer: decide what the body is. */
static bool body_start(struct xfer *x)
{
	x->body_started = true;
	if (!x->is_range || x->status != 206) {
		if (x->is_range && x->status == 200) {
			/* Range ignored: this is the whole blob. */
			x->pos = 0;
			stat_add(x->rm, range_ignored, 1);
		}
		return true;
	}
	if (!x->has_content_range) {
		x->fatal = "206 answer without a Content-Range";
		return false;
	}
	if (x->cr_start != x->off + x->got) {
		x->fatal = "206 answer for another range than asked";
		return false;
	}
	x->pos = x->cr_start;
	return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	uint64_t want, end;

	stat_add(x->rm, bytes, n);
	x->last_byte_ms = now_ms();
	if (!x->body_started && !body_start(x))
		return 0;
	if (x->status >= 300 && x->status < 400)
		return n;
	if ((x->is_range && x->status != 200 && x->status != 206) ||
	    (!x->is_range && x->status != 200)) {
		/* An error page: keep its start for the message. */
		size_t k = sizeof(x->err_body) - 1 - x->err_body_len;

		k = k < n ? k : n;
		memcpy(x->err_body + x->err_body_len, data, k);
		x->err_body_len += k;
		x->err_body[x->err_body_len] = '\0';
		return n;
	}
	if (!x->is_range) {
		if (x->doc_len + n > x->doc_max) {
			x->fatal = "document larger than allowed";
			return 0;
		}
		if (!x->doc) {
			x->doc = malloc(x->doc_max + 1);
			if (!x->doc) {
				x->fatal = "out of memory";
				return 0;
			}
		}
		memcpy(x->doc + x->doc_len, data, n);
		x->doc_len += n;
		return n;
	}

	/* Keep the part of [pos, pos + n) that is the next wanted bytes. */
	want = x->off + x->got;
	end = x->pos + n;
	if (end > want && x->pos <= want) {
		size_t skip = (size_t)(want - x->pos);
		size_t k = n - skip;

		if (k > x->len - x->got)
			k = x->len - x->got;
		memcpy(x->dst + x->got, data + skip, k);
		x->got += k;
	}
	x->pos = end;
	if (x->got == x->len) {
		/* Done: drop the rest of an over-long (200) body. */
		x->complete = true;
		return 0;
	}
	return n;
}

/* Forgets the previous try's answer; a range read keeps what arrived, so
 * the next try asks for the rest. */
static void xfer_try_reset(struct xfer *x)
{
	x->status = 0;
	x->body_started = false;
	x->fatal = NULL;
	x->stalled = false;
	x->last_byte_ms = now_ms();
	/* No answer at all must back off too: "no Retry-After", not 0. */
	x->retry_after_s = -1;
	if (!x->is_range)
		x->doc_len = 0;
}

/* What to do after one try. */
enum outcome {
	OUT_DONE,
	OUT_RETRY, /* transient: back off and try again */
	OUT_AUTH, /* credentials wanted or refused: refresh, then again */
	OUT_FAIL, /* permanent */
};

/* Called by libcurl about once a second while a try waits: gives up on a
 * try that has received nothing for the stall time. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;

	if (now_ms() - x->last_byte_ms < x->rm->stall_ms)
		return 0;
	x->stalled = true;
	return 1;
}

static bool curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/*
 * The start of an error page as one line for a message: an HTML page's
 * <title> (or its text without tags), control characters and runs of
 * blanks as one space, at most @size - 1 bytes.  Servers' 404 pages are
 * otherwise a screen of markup.
 */
static void body_text(const char *body, char *out, size_t size)
{
	const char *title = strcasestr(body, "<title>");
	const char *end = NULL;
	bool tag = false, blank = true;
	size_t n = 0;

	if (title) {
		body = title + 7;
		end = strcasestr(body, "</title>");
	}
	for (const char *p = body; *p && (!end || p < end) && n + 1 < size;
	     p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '<') {
			tag = true;
			continue;
		}
		if (tag) {
			tag = c != '>';
			continue;
		}
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (!blank)
				out[n++] = ' ';
			blank = true;
			continue;
		}
		out[n++] = (char)c;
		blank = false;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static enum outcome classify(struct xfer *x, CURLcode rc, char *cause,
			     size_t cause_size, int *ret_errno)
{
	char text[121];
	*ret_errno = -EIO;
	if (x->complete)
		return OUT_DONE;
	if (x->fatal) {
		snprintf(cause, cause_size, "%s", x->fatal);
		return OUT_FAIL;
	}
	if (x->stalled) {
		snprintf(cause, cause_size, "no data for %u ms",
			 x->rm->stall_ms);
		return OUT_RETRY;
	}
	if (rc != CURLE_OK) {
		snprintf(cause, cause_size, "%s", curl_easy_strerror(rc));
		return curl_transient(rc) ? OUT_RETRY : OUT_FAIL;
	}
	if (x->status == 200 && !x->is_range)
		return OUT_DONE;
	if (x->status == 200 || x->status == 206) {
		snprintf(cause, cause_size, "body ended after %zu of %zu bytes",
			 x->got, x->len);
		return OUT_RETRY;
	}
	body_text(x->err_body_len ? x->err_body : "", text, sizeof(text));
	snprintf(cause, cause_size, "HTTP %ld%s%s", x->status,
		 text[0] ? ": " : "", text);
	if (x->status == 401 || (x->status == 403 && x->www_auth[0]))
		return OUT_AUTH;
	if (x->status == 403 && x->sent_auth)
		return OUT_AUTH;
	if (x->status == 408 || x->status == 429 ||
	    (x->status >= 500 && x->status <= 599))
		return OUT_RETRY;
	if (x->status == 404)
		*ret_errno = -ENOENT;
	else if (x->status == 401 || x->status == 403)
		*ret_errno = -EACCES;
	return OUT_FAIL;
}

static int auth_refresh(struct fs_remote *rm, const char *challenge,
			unsigned int gen_seen, char *err, size_t err_size);

static void remote_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Sets up @h for one try of @x; @auth is the Authorization line or NULL. */
static struct curl_slist *xfer_setup(struct fs_remote *rm, CURL *h,
				     struct xfer *x, const char *auth,
				     uint64_t remaining_ms)
{
	struct curl_slist *hdrs = NULL, *t;
	char range[64];

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "imgfs/" IMGFS_VERSION);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)remaining_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(remaining_ms < CONNECT_TIMEOUT_MS ?
					remaining_ms : CONNECT_TIMEOUT_MS));
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_VERBOSE, rm->verbose ? 1L : 0L);
	if (x->is_range) {
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64,
			 x->off + x->got, x->off + x->len - 1);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	if (x->accept) {
		t = curl_slist_append(hdrs, x->accept);
		hdrs = t ? t : hdrs;
	}
	if (auth) {
		t = curl_slist_append(hdrs, auth);
		hdrs = t ? t : hdrs;
	}
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	return hdrs;
}

/*
 * Runs @x to completion: tries, backs off, refreshes credentials, until
 * it is done, fails for good, or the deadline passes.
 */
static int xfer_run(struct fs_remote *rm, struct xfer *x, char *err,
		    size_t err_size)
{
	uint64_t start = now_ms(), deadline = start + rm->deadline_ms;
	uint64_t backoff = BACKOFF_FIRST_MS, now, wait;
	char cause[256] = "no answer";
	int tries = 0, auth_tries = 0, code, r;
	CURL *h = thread_handle(rm);

	if (!h)
		return -ENOMEM;
	for (;;) {
		struct curl_slist *hdrs;
		unsigned int gen;
		char *auth;
		CURLcode rc;

		/* A token request runs under auth_lock (auth_refresh) and
		 * sends only its own credentials. */
		gen = 0;
		auth = NULL;
		if (!x->no_auth) {
			pthread_mutex_lock(&rm->auth_lock);
			gen = rm->auth_gen;
			auth = rm->auth_header ? strdup(rm->auth_header) : NULL;
			pthread_mutex_unlock(&rm->auth_lock);
		}
		if (x->auth && !auth)
			auth = strdup(x->auth);
		x->sent_auth = auth != NULL;

		now = now_ms();
		hdrs = xfer_setup(rm, h, x, auth, deadline > now ?
						     deadline - now : 1);
		xfer_try_reset(x);
		stat_add(rm, requests, 1);
		if (tries++)
			stat_add(rm, retries, 1);
		rc = curl_easy_perform(h);
		curl_slist_free_all(hdrs);
		free(auth);

		switch (classify(x, rc, cause, sizeof(cause), &code)) {
		case OUT_DONE:
			return 0;
		case OUT_FAIL:
			return index_seterr(err, err_size, code, "%s: %s", x->url,
				      cause);
		case OUT_AUTH:
			if (x->no_auth || auth_tries++ >= AUTH_TRIES)
				return index_seterr(err, err_size, -EACCES,
					      "%s: %s (credentials refused)",
					      x->url, cause);
			r = auth_refresh(rm, x->www_auth, gen, err, err_size);
			if (r < 0)
				return r;
			continue;
		case OUT_RETRY:
			break;
		}

		now = now_ms();
		wait = backoff;
		if (x->retry_after_s >= 0)
			wait = (uint64_t)x->retry_after_s * 1000;
		if (now + wait >= deadline)
			return index_seterr(err, err_size, -EIO,
				      "%s: gave up after %d tries in %.1f s: %s",
				      x->url, tries,
				      (double)(now - start) / 1000, cause);
		sleep_ms(wait);
		backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2 :
							 BACKOFF_MAX_MS;
	}
}

/* ---- tokens ---- */

/* Finds @key="value" in a challenge's parameters. */
static bool challenge_param(const char *params, const char *key, char *out,
			    size_t out_size)
{
	size_t k = strlen(key);
	const char *p = params;

	while ((p = strcasestr(p, key))) {
		bool at_start = p == params || p[-1] == ' ' || p[-1] == ',';

		if (at_start && p[k] == '=' && p[k + 1] == '"') {
			const char *v = p + k + 2, *q = strchr(v, '"');

			if (!q || (size_t)(q - v) >= out_size)
				return false;
			memcpy(out, v, (size_t)(q - v));
			out[q - v] = '\0';
			return true;
		}
		p += k;
	}
	return false;
}

/* Asks the token server for a token; returns it malloc'd. */
static int token_fetch(struct fs_remote *rm, const char *params, char **ret,
		       char *err, size_t err_size)
{
	char realm[512], service[256] = "", scope[512] = "", *url = NULL;
	char *esc_service = NULL, *esc_scope = NULL, *basic = NULL;
	struct xfer x = { .rm = rm, .doc_max = DOC_MAX };
	struct json_object *obj = NULL, *v;
	CURL *h = thread_handle(rm);
	int r;

	if (!h)
		return -ENOMEM;
	if (!challenge_param(params, "realm", realm, sizeof(realm)) ||
	    (strncmp(realm, "http://", 7) && strncmp(realm, "https://", 8)))
		return index_seterr(err, err_size, -EACCES,
			      "%s: token challenge without an http(s) realm",
			      rm->host);
	challenge_param(params, "service", service, sizeof(service));
	if (!challenge_param(params, "scope", scope, sizeof(scope)) &&
	    rm->kind == REMOTE_REGISTRY)
		snprintf(scope, sizeof(scope), "repository:%s:pull", rm->repo);
	esc_service = curl_easy_escape(h, service, 0);
	esc_scope = curl_easy_escape(h, scope, 0);
	if (!esc_service || !esc_scope ||
	    asprintf(&url, "%s%sservice=%s&scope=%s", realm,
		     strchr(realm, '?') ? "&" : "?", esc_service,
		     esc_scope) < 0) {
		url = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (rm->basic && asprintf(&basic, "Authorization: Basic %s",
				  rm->basic) < 0) {
		basic = NULL;
		r = -ENOMEM;
		goto out;
	}
	x.url = url;
	/* The token request carries the credentials itself; a refusal is
	 * final, not a reason to ask for another token. */
	x.no_auth = true;
	x.auth = basic;
	r = xfer_run(rm, &x, err, err_size);
	if (r < 0)
		goto out;
	x.doc[x.doc_len] = '\0';
	obj = json_tokener_parse(x.doc);
	if ((!obj || !json_object_object_get_ex(obj, "token", &v) ||
	     !json_object_is_type(v, json_type_string)) &&
	    (!obj || !json_object_object_get_ex(obj, "access_token", &v) ||
	     !json_object_is_type(v, json_type_string))) {
		r = index_seterr(err, err_size, -EACCES,
			   "%s: token server answered without a token", realm);
		goto out;
	}
	*ret = strdup(json_object_get_string(v));
	r = *ret ? 0 : -ENOMEM;
out:
	json_object_put(obj);
	free(x.doc);
	curl_free(esc_service);
	curl_free(esc_scope);
	free(url);
	free(basic);
	return r;
}

/*
 * Answers a 401/403: a token for a Bearer challenge, the credentials for
 * a Basic one.  @gen_seen is the auth generation the failed request used;
 * if another thread has refreshed since, its result is simply used.
 */
static int auth_refresh(struct fs_remote *rm, const char *challenge,
			unsigned int gen_seen, char *err, size_t err_size)
{
	char *line = NULL, *token = NULL;
	int r = 0;

	pthread_mutex_lock(&rm->auth_lock);
	if (rm->auth_gen != gen_seen)
		goto out;
	if (strncasecmp(challenge, "Bearer ", 7) == 0) {
		r = token_fetch(rm, challenge + 7, &token, err, err_size);
		if (r < 0)
			goto out;
		if (asprintf(&line, "Authorization: Bearer %s", token) < 0)
			line = NULL;
	} else if (rm->basic && (strncasecmp(challenge, "Basic", 5) == 0 ||
				 !challenge[0])) {
		if (rm->auth_header &&
		    strncmp(rm->auth_header, "Authorization: Basic ", 21) == 0) {
			r = index_seterr(err, err_size, -EACCES,
				   "%s refused the credentials of the authfile",
				   rm->host);
			goto out;
		}
		if (asprintf(&line, "Authorization: Basic %s", rm->basic) < 0)
			line = NULL;
	} else {
		r = index_seterr(err, err_size, -EACCES,
			   "%s wants credentials (%s%.60s); give an authfile with -o authfile=",
			   rm->host, challenge[0] ? "" : "no challenge",
			   challenge);
		goto out;
	}
	if (!line) {
		r = -ENOMEM;
		goto out;
	}
	free(rm->auth_header);
	rm->auth_header = line;
	rm->auth_gen++;
	stat_add(rm, auth_refreshes, 1);
out:
	pthread_mutex_unlock(&rm->auth_lock);
	free(token);
	return r;
}

/* ---- documents ---- */

/* GETs @url as a document of at most @max bytes (NUL-terminated). */
static int get_doc(struct fs_remote *rm, const char *url, const char *accept,
		   size_t max, char **ret_data, size_t *ret_size, char *err,
		   size_t err_size)
{
	struct xfer x = { .rm = rm, .url = url, .accept = accept,
			  .doc_max = max };
	int r;

	r = xfer_run(rm, &x, err, err_size);
	if (r < 0) {
		free(x.doc);
		return r;
	}
	if (!x.doc) {
		x.doc = malloc(1);
		if (!x.doc)
			return -ENOMEM;
	}
	x.doc[x.doc_len] = '\0';
	*ret_data = x.doc;
	*ret_size = x.doc_len;
	return 0;
}

static char *blob_url(const struct fs_remote *rm, const char *digest)
{
	char *url;
	int n;

	if (rm->kind == REMOTE_REGISTRY)
		n = asprintf(&url, "%s/v2/%s/blobs/%s", rm->base, rm->repo,
			     digest);
	else
		n = asprintf(&url, "%s/blobs/sha256/%s", rm->base, digest + 7);
	return n < 0 ? NULL : url;
}

static int docs_get(struct index_docs *docs, const char *digest,
		    bool manifest, char **ret_data, size_t *ret_size,
		    char *err, size_t err_size)
{
	struct fs_remote *rm = (struct fs_remote *)docs;
	uint8_t raw[32];
	char *url;
	int r, n;

	if (index_digest_parse(digest, raw) < 0)
		return index_seterr(err, err_size, -EINVAL, "bad digest '%.80s'",
			      digest);
	if (manifest && rm->kind == REMOTE_REGISTRY)
		n = asprintf(&url, "%s/v2/%s/manifests/%s", rm->base, rm->repo,
			     digest);
	else
		n = (url = blob_url(rm, digest)) ? 0 : -1;
	if (n < 0)
		return -ENOMEM;
	r = get_doc(rm, url, manifest ? ACCEPT_MANIFESTS : NULL, DOC_MAX,
		    ret_data, ret_size, err, err_size);
	if (r >= 0 && index_digest_check(digest, *ret_data, *ret_size) < 0) {
		r = index_seterr(err, err_size, -EBADMSG,
			   "%s does not match its digest", url);
		free(*ret_data);
	}
	free(url);
	return r;
}

/* The first document: the registry's manifest (or index) for the tag or
 * digest, or the served layout's index.json. */
static int open_top(struct fs_remote *rm, struct index_image *img, char *err,
		    size_t err_size)
{
	char *url, *data = NULL, what[600];
	size_t size;
	int r, n;

	if (rm->kind == REMOTE_REGISTRY)
		n = asprintf(&url, "%s/v2/%s/manifests/%s", rm->base, rm->repo,
			     rm->reference);
	else
		n = asprintf(&url, "%s/index.json", rm->base);
	if (n < 0)
		return -ENOMEM;
	r = get_doc(rm, url, rm->kind == REMOTE_REGISTRY ? ACCEPT_MANIFESTS :
							   NULL,
		    DOC_MAX, &data, &size, err, err_size);
	if (r >= 0 && rm->kind == REMOTE_REGISTRY &&
	    strncmp(rm->reference, "sha256:", 7) == 0 &&
	    index_digest_check(rm->reference, data, size) < 0)
		r = index_seterr(err, err_size, -EBADMSG,
			   "%s does not match its digest", url);
	if (r >= 0) {
		snprintf(what, sizeof(what), "%.590s", url);
		r = index_image_from_docs(img, &rm->docs, data, size, what,
					  rm->kind == REMOTE_LAYOUT, err,
					  err_size);
	}
	free(data);
	free(url);
	return r;
}

/* ---- opening and closing ---- */

int fs_remote_open(const char *ref, const struct fs_remote_options *opts,
		struct fs_remote **ret_remote, struct index_image **ret_image,
		char *err, size_t err_size)
{
	static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
	struct index_image *img = NULL;
	struct fs_remote *rm;
	int r;

	pthread_once(&curl_once, remote_global_init);
	rm = calloc(1, sizeof(*rm));
	if (!rm)
		return -ENOMEM;
	rm->docs.get = docs_get;
	rm->deadline_ms = opts && opts->deadline_ms ? opts->deadline_ms : 60000;
	rm->stall_ms = opts && opts->stall_ms ? opts->stall_ms : 10000;
	if (rm->stall_ms > rm->deadline_ms)
		rm->stall_ms = rm->deadline_ms;
	rm->verbose = opts && opts->verbose;
	pthread_mutex_init(&rm->auth_lock, NULL);
	pthread_mutex_init(&rm->handles_lock, NULL);
	if (pthread_key_create(&rm->handle_key, NULL) != 0) {
		free(rm);
		return -ENOMEM;
	}

	if (strncmp(ref, "docker://", 9) == 0)
		r = parse_docker_ref(rm, ref, opts && opts->insecure, err,
				     err_size);
	else if (fs_remote_is_ref(ref))
		r = parse_layout_ref(rm, ref, err, err_size);
	else
		r = index_seterr(err, err_size, -EINVAL, "'%s' is not a remote image",
			   ref);
	if (r >= 0 && opts && opts->authfile)
		r = load_authfile(rm, opts->authfile, err, err_size);
	if (r < 0)
		goto err_free;

	img = calloc(1, sizeof(*img));
	if (!img) {
		r = -ENOMEM;
		goto err_free;
	}
	img->dir = strdup(ref);
	if (rm->kind == REMOTE_LAYOUT && rm->reference)
		img->tag = strdup(rm->reference);
	if (!img->dir || (rm->kind == REMOTE_LAYOUT && rm->reference &&
			  !img->tag)) {
		r = -ENOMEM;
		goto err_free;
	}
	r = open_top(rm, img, err, err_size);
	if (r < 0)
		goto err_free;

	*ret_remote = rm;
	*ret_image = img;
	return 0;

err_free:
	index_image_free(img);
	fs_remote_free(rm);
	return r;
}

void fs_remote_free(struct fs_remote *rm)
{
	if (!rm)
		return;
	for (size_t i = 0; i < rm->n_handles; i++)
		curl_easy_cleanup(rm->handles[i]);
	free(rm->handles);
	pthread_key_delete(rm->handle_key);
	pthread_mutex_destroy(&rm->auth_lock);
	pthread_mutex_destroy(&rm->handles_lock);
	free(rm->auth_header);
	free(rm->base);
	free(rm->host);
	free(rm->repo);
	free(rm->reference);
	free(rm->basic);
	free(rm);
}

const struct fs_remote_stats *fs_remote_stats(const struct fs_remote *rm)
{
	return &rm->stats;
}

/* ---- blob ranges ---- */

int fs_remote_blob_read(struct fs_remote *rm, const char *digest, uint64_t off,
		     size_t len, void *buf, char *err, size_t err_size)
{
	struct xfer x = { .rm = rm, .is_range = true, .off = off, .len = len,
			  .dst = buf };
	uint64_t t0 = now_ms();
	uint8_t raw[32];
	int r;

	if (len == 0)
		return 0;
	if (index_digest_parse(digest, raw) < 0)
		return index_seterr(err, err_size, -EINVAL, "bad digest '%.80s'",
			      digest);
	x.url = blob_url(rm, digest);
	if (!x.url)
		return -ENOMEM;
	r = xfer_run(rm, &x, err, err_size);
	free((char *)x.url);
	if (r < 0) {
		stat_add(rm, errors, 1);
		return r;
	}
	stat_add(rm, reads, 1);
	stat_add(rm, latency_us, (now_ms() - t0) * 1000);
	return 0;
}

/* Finds the locator from the blob's tail: one request, two if the seek
 * table is larger than the first guess. */
static int tail_locator(struct fs_remote *rm,
			const struct index_image_layer *layer,
			struct index_locator *ret, char *err, size_t err_size)
{
	uint64_t want = layer->size < TAIL_FETCH ? layer->size : TAIL_FETCH;
	uint8_t *tail = NULL, *p;
	uint64_t need;
	int r = -EBADMSG;

	for (int tries = 0; tries < 2; tries++) {
		if (want > INDEX_FETCH_MAX || want == 0)
			break;
		p = realloc(tail, (size_t)want);
		if (!p) {
			r = -ENOMEM;
			break;
		}
		tail = p;
		r = fs_remote_blob_read(rm, layer->digest, layer->size - want,
				     (size_t)want, tail, err, err_size);
		if (r < 0)
			goto out;
		r = index_blob_tail_parse(tail, (size_t)want, layer->size, ret,
					  &need);
		if (r != -EAGAIN)
			break;
		want = need;
	}
	if (r < 0)
		index_seterr(err, err_size, r,
		       "layer %s is not a seekable layer with an index (%s)",
		       layer->digest, index_blob_tail_error(r));
out:
	free(tail);
	return r;
}

int fs_remote_layer_map_open(struct fs_remote *rm,
			  const struct index_image_layer *layer,
			  struct index_layer_map **ret_map, char *err,
			  size_t err_size)
{
	struct index_locator loc;
	void *data;
	int r;

	if (layer->has_locator) {
		loc = layer->locator;
	} else {
		r = tail_locator(rm, layer, &loc, err, err_size);
		if (r < 0)
			return r;
	}
	if (loc.size == 0 || loc.size > INDEX_FETCH_MAX ||
	    loc.offset > layer->size || loc.size > layer->size - loc.offset)
		return index_seterr(err, err_size, -EBADMSG,
			      "index of %s: %" PRIu64 " bytes at %" PRIu64
			      " do not fit in a %" PRIu64 "-byte blob",
			      layer->digest, loc.size, loc.offset, layer->size);
	data = malloc((size_t)loc.size);
	if (!data)
		return -ENOMEM;
	r = fs_remote_blob_read(rm, layer->digest, loc.offset, (size_t)loc.size,
			     data, err, err_size);
	if (r < 0) {
		free(data);
		return r;
	}
	return index_layer_map_from_memory(data, &loc, layer->digest, ret_map,
					   err, err_size);
}
