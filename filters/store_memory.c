/* SPDX-License-Identifier: MIT */
/*
 * store_memory.c - the embedded store (store = "memory", the default): one
 * process, every loop, nothing to install.
 *
 * A hash table split into shards, each with its own mutex, LRU list and
 * share of store_memory_max, so loops rarely wait on each other and memory
 * stays bounded whatever the clients send.  Keys are hashed with SipHash-2-4
 * under a random key: sender and recipient addresses are the client's
 * choice, and a predictable hash would let one client turn a shard into a
 * list (hash flooding).
 *
 * Entries are a string (whitelists) or a small hash of numeric fields (the
 * greylist, reputation and rate-limit records of store.h).  Expired entries
 * are dropped when touched and from the LRU tail; when a shard is over its
 * share, its least recently used entries go.  Each operation of store.h is
 * one function here, run under the shard's lock: the same atomicity the
 * Lua scripts give on Redis.  Operations with several keys (greylisting:
 * triplet and auto-whitelist) lock one shard at a time, never two at once;
 * each key's update is atomic, as in the Redis scripts where the keys may
 * live on different cluster nodes.
 */
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "config.h"
#include "log.h"

#define STM_SHARDS   16
#define STM_FIELDS   5
#define STM_OVERHEAD 64 /* allocator and table slot, roughly */

struct stm_field {
	char name[8];
	double v;
};

struct stm_entry {
	struct stm_entry *next;     /* hash chain */
	struct stm_entry *lru_prev; /* towards most recent */
	struct stm_entry *lru_next; /* towards least recent */
	uint64_t hash;
	int64_t expire_ms; /* 0: never */
	char *str;         /* a string entry, else NULL */
	unsigned nf;
	struct stm_field f[STM_FIELDS];
	size_t size;
	char key[]; /* NUL-terminated */
};

struct stm_shard {
	pthread_mutex_t lock;
	struct stm_entry **table;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t bytes;
	struct stm_entry *lru_head; /* most recent */
	struct stm_entry *lru_tail;
};

static struct {
	struct stm_shard shards[STM_SHARDS];
	size_t shard_max;
	uint64_t k0, k1;
	bool open;
} stm;

/* SipHash-2-4 (Aumasson & Bernstein), 64-bit output. */
#define STM_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define STM_SIPROUND                                                           \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = STM_ROTL(v1, 13);                                         \
		v1 ^= v0;                                                      \
		v0 = STM_ROTL(v0, 32);                                         \
		v2 += v3;                                                      \
		v3 = STM_ROTL(v3, 16);                                         \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = STM_ROTL(v3, 21);                                         \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = STM_ROTL(v1, 17);                                         \
		v1 ^= v2;                                                      \
		v2 = STM_ROTL(v2, 32);                                         \
	} while (0)

static uint64_t
stm_hash(const char *s, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ stm.k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ stm.k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ stm.k0;
	uint64_t v3 = 0x7465646279746573ULL ^ stm.k1;
	const unsigned char *p = (const unsigned char *)s;
	size_t left = len;
	uint64_t m;

	while (left >= 8) {
		memcpy(&m, p, 8); /* little-endian hosts; any order hashes */
		v3 ^= m;
		STM_SIPROUND;
		STM_SIPROUND;
		v0 ^= m;
		p += 8;
		left -= 8;
	}
	m = (uint64_t)len << 56;
	for (size_t i = 0; i < left; i++)
		m |= (uint64_t)p[i] << (8 * i);
	v3 ^= m;
	STM_SIPROUND;
	STM_SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	STM_SIPROUND;
	STM_SIPROUND;
	STM_SIPROUND;
	STM_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static void
stm_lru_unlink(struct stm_shard *sh, struct stm_entry *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		sh->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		sh->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void
stm_lru_push(struct stm_shard *sh, struct stm_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = sh->lru_head;
	if (sh->lru_head != NULL)
		sh->lru_head->lru_prev = e;
	sh->lru_head = e;
	if (sh->lru_tail == NULL)
		sh->lru_tail = e;
}

static void
stm_remove(struct stm_shard *sh, struct stm_entry *e)
{
	struct stm_entry **pp = &sh->table[e->hash & (sh->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	stm_lru_unlink(sh, e);
	sh->count--;
	sh->bytes -= e->size;
	free(e->str);
	free(e);
}

static bool
stm_expired(const struct stm_entry *e, int64_t now_ms)
{
	return e->expire_ms != 0 && e->expire_ms <= now_ms;
}

/* stm_trim - drop expired entries at the LRU tail, then least recently
 * used ones while the shard is over its share. */
static void
stm_trim(struct stm_shard *sh, int64_t now_ms)
{
	for (int i = 0; i < 4 && sh->lru_tail != NULL; i++) {
		if (!stm_expired(sh->lru_tail, now_ms))
			break;
		stm_remove(sh, sh->lru_tail);
	}
	while (sh->bytes > stm.shard_max && sh->lru_tail != NULL)
		stm_remove(sh, sh->lru_tail);
}

static void
stm_grow(struct stm_shard *sh)
{
	size_t n = sh->nbuckets * 2;
	struct stm_entry **t = px_calloc(n, sizeof(*t));

	for (size_t i = 0; i < sh->nbuckets; i++) {
		struct stm_entry *e = sh->table[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = t[e->hash & (n - 1)];
			t[e->hash & (n - 1)] = e;
		}
	}
	free(sh->table);
	sh->table = t;
	sh->nbuckets = n;
}

static struct stm_shard *
stm_shard_of(uint64_t h)
{
	return &stm.shards[(h >> 56) % STM_SHARDS];
}

/* stm_find - the live entry for key (expired ones are removed), touched as
 * recently used; NULL if none.  Shard locked. */
static struct stm_entry *
stm_find(struct stm_shard *sh, const char *key, uint64_t h, int64_t now_ms)
{
	struct stm_entry *e = sh->table[h & (sh->nbuckets - 1)];

	for (; e != NULL; e = e->next) {
		if (e->hash != h || strcmp(e->key, key) != 0)
			continue;
		if (stm_expired(e, now_ms)) {
			stm_remove(sh, e);
			return NULL;
		}
		stm_lru_unlink(sh, e);
		stm_lru_push(sh, e);
		return e;
	}
	return NULL;
}

/* stm_create - a new empty hash entry for key (absent).  Shard locked. */
static struct stm_entry *
stm_create(struct stm_shard *sh, const char *key, uint64_t h)
{
	size_t klen = strlen(key);
	struct stm_entry *e = px_calloc(1, sizeof(*e) + klen + 1);

	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->size = sizeof(*e) + klen + 1 + STM_OVERHEAD;
	if (sh->count >= sh->nbuckets)
		stm_grow(sh);
	e->next = sh->table[h & (sh->nbuckets - 1)];
	sh->table[h & (sh->nbuckets - 1)] = e;
	stm_lru_push(sh, e);
	sh->count++;
	sh->bytes += e->size;
	return e;
}

static double
stm_get_f(const struct stm_entry *e, const char *name)
{
	if (e == NULL)
		return 0;
	for (unsigned i = 0; i < e->nf; i++)
		if (strcmp(e->f[i].name, name) == 0)
			return e->f[i].v;
	return 0;
}

static bool
stm_has_f(const struct stm_entry *e, const char *name)
{
	for (unsigned i = 0; e != NULL && i < e->nf; i++)
		if (strcmp(e->f[i].name, name) == 0)
			return true;
	return false;
}

static void
stm_set_f(struct stm_entry *e, const char *name, double v)
{
	for (unsigned i = 0; i < e->nf; i++) {
		if (strcmp(e->f[i].name, name) == 0) {
			e->f[i].v = v;
			return;
		}
	}
	if (e->nf == STM_FIELDS)
		return; /* the operations use at most STM_FIELDS names */
	snprintf(e->f[e->nf].name, sizeof(e->f[e->nf].name), "%s", name);
	e->f[e->nf++].v = v;
}

static void
stm_expire_in(struct stm_entry *e, int64_t now_ms, int64_t ttl_ms)
{
	e->expire_ms = ttl_ms > 0 ? now_ms + ttl_ms : 0;
}

/* A locked view of one key: lock, find, operate, unlock. */
struct stm_key {
	struct stm_shard *sh;
	const char *key;
	uint64_t h;
};

static struct stm_entry *
stm_lock(struct stm_key *k, const char *key, int64_t now_ms)
{
	k->key = key;
	k->h = stm_hash(key, strlen(key));
	k->sh = stm_shard_of(k->h);
	pthread_mutex_lock(&k->sh->lock);
	return stm_find(k->sh, key, k->h, now_ms);
}

static void
stm_unlock(struct stm_key *k, int64_t now_ms)
{
	stm_trim(k->sh, now_ms);
	pthread_mutex_unlock(&k->sh->lock);
}

/* stm_hash_entry - e, or a new empty hash entry (replacing a string). */
static struct stm_entry *
stm_hash_entry(struct stm_key *k, struct stm_entry *e)
{
	if (e != NULL && e->str != NULL) {
		stm_remove(k->sh, e);
		e = NULL;
	}
	return e != NULL ? e : stm_create(k->sh, k->key, k->h);
}

/* stm_wl_valid - a whitelist entry holds at now: its value is its end
 * (seconds) or 0 for none; anything else (an operator's own SET) holds. */
static bool
stm_wl_valid(const struct stm_entry *e, int64_t now)
{
	char *end;
	double until;

	if (e->str == NULL)
		return true;
	until = strtod(e->str, &end);
	return end == e->str || *end != '\0' || until == 0 ||
	       until > (double)now;
}

static void
stm_greylist(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now = cmd->args[0], delay = cmd->args[1];
	const int64_t window = cmd->args[2], pass_ttl = cmd->args[3];
	const int64_t awl_after = cmd->args[4];
	const int64_t now_ms = st_now_ms();
	struct stm_key k;
	struct stm_entry *e;
	double first, passed, n;
	bool passing = false, was_passed = false;

	r->nv = 3;
	for (unsigned i = 2; i < cmd->nkeys; i++) {
		bool listed;

		e = stm_lock(&k, cmd->keys[i], now_ms);
		listed = e != NULL && stm_wl_valid(e, now);
		stm_unlock(&k, now_ms);
		if (listed) {
			r->v[0] = ST_GL_WHITELISTED;
			return;
		}
	}

	/* The auto-whitelist. */
	e = stm_lock(&k, cmd->keys[1], now_ms);
	n = stm_get_f(e, "n");
	if (awl_after > 0 && n >= (double)awl_after) {
		if (now - stm_get_f(e, "last") >= 60) {
			e = stm_hash_entry(&k, e);
			stm_set_f(e, "n", ++n);
			stm_set_f(e, "last", (double)now);
		}
		stm_expire_in(e, now_ms, pass_ttl * 1000);
		stm_unlock(&k, now_ms);
		r->v[0] = ST_GL_AWL;
		r->v[2] = (int64_t)n;
		return;
	}
	stm_unlock(&k, now_ms);

	/* The triplet. */
	e = stm_lock(&k, cmd->keys[0], now_ms);
	first = stm_get_f(e, "first");
	passed = stm_get_f(e, "passed");
	if (e == NULL || !stm_has_f(e, "first") ||
	    (passed == 0 && now - first > window) ||
	    (passed != 0 && now - passed > pass_ttl)) {
		e = stm_hash_entry(&k, e);
		stm_set_f(e, "first", (double)now);
		stm_set_f(e, "passed", 0);
		stm_expire_in(e, now_ms, window * 1000);
		r->v[0] = ST_GL_NEW;
		r->v[1] = delay;
	} else if (passed == 0 && now - first < delay) {
		r->v[0] = ST_GL_EARLY;
		r->v[1] = delay - (now - (int64_t)first);
	} else {
		was_passed = passed != 0;
		stm_set_f(e, "passed", (double)now);
		stm_expire_in(e, now_ms, pass_ttl * 1000);
		passing = true;
		r->v[0] = was_passed ? ST_GL_PASS : ST_GL_PASSED;
	}
	stm_unlock(&k, now_ms);

	/* A delivery counts towards the auto-whitelist. */
	e = stm_lock(&k, cmd->keys[1], now_ms);
	n = stm_get_f(e, "n");
	if (passing) {
		if (e == NULL || now - stm_get_f(e, "last") >= 60) {
			e = stm_hash_entry(&k, e);
			stm_set_f(e, "n", ++n);
			stm_set_f(e, "last", (double)now);
		}
		stm_expire_in(e, now_ms, pass_ttl * 1000);
	}
	stm_unlock(&k, now_ms);
	r->v[2] = (int64_t)n;
}

static void
stm_ratelimit(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now = cmd->args[0];
	const double cost = (double)cmd->args[1], limit = (double)cmd->args[2];
	const int64_t period = cmd->args[3];
	const int64_t now_ms = st_now_ms();
	struct stm_key k;
	struct stm_entry *e = stm_lock(&k, cmd->keys[0], now_ms);
	double level = stm_get_f(e, "level");
	double ts =
	    e != NULL && stm_has_f(e, "ts") ? stm_get_f(e, "ts") : (double)now;

	level -= ((double)now - ts) * limit / (double)period;
	if (level < 0)
		level = 0;
	r->nv = 2;
	if (level + cost > limit) {
		r->v[0] = 1;
	} else {
		level += cost;
		r->v[0] = 0;
	}
	e = stm_hash_entry(&k, e);
	stm_set_f(e, "level", level);
	stm_set_f(e, "ts", (double)now);
	stm_expire_in(e, now_ms, period);
	stm_unlock(&k, now_ms);
	r->v[1] = (int64_t)ceil(level);
}

static const char *const stm_rep_fields[4] = {"a", "t", "r", "g"};

static void
stm_rep(const struct st_cmd *cmd, struct st_reply *r, bool add)
{
	const int64_t now = cmd->args[0], half = cmd->args[1];
	const int64_t now_ms = st_now_ms();

	r->nv = add ? 0 : 4 * cmd->nkeys;
	for (unsigned i = 0; i < cmd->nkeys; i++) {
		struct stm_key k;
		struct stm_entry *e = stm_lock(&k, cmd->keys[i], now_ms);
		double age = e != NULL ? (double)now - stm_get_f(e, "ts") : 0;
		double decay = exp2(-(age < 0 ? 0 : age) / (double)half);

		if (!add) {
			for (int f = 0; f < 4; f++)
				r->v[4 * i + (unsigned)f] = (int64_t)llround(
				    100 * stm_get_f(e, stm_rep_fields[f]) *
				    decay);
			stm_unlock(&k, now_ms);
			continue;
		}
		double c[4];

		for (int f = 0; f < 4; f++)
			c[f] = stm_get_f(e, stm_rep_fields[f]) * decay;
		c[cmd->args[2] & 3] += 1;
		e = stm_hash_entry(&k, e);
		for (int f = 0; f < 4; f++)
			stm_set_f(e, stm_rep_fields[f], c[f]);
		stm_set_f(e, "ts", (double)now);
		stm_expire_in(e, now_ms, cmd->args[3] * 1000);
		stm_unlock(&k, now_ms);
	}
}

static void
stm_strs_add(struct st_reply *r, const char *s)
{
	r->strs = px_realloc(r->strs, (r->nstrs + 1) * sizeof(char *));
	r->strs[r->nstrs++] = px_strdup(s);
}

/* Numbers as Lua's tostring() writes them, so `mxguard ctl` shows the same
 * text for both stores. */
static void
stm_number(char *buf, size_t size, double v)
{
	snprintf(buf, size, "%.14g", v);
}

static void
stm_get(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now_ms = st_now_ms();
	struct stm_key k;
	struct stm_entry *e = stm_lock(&k, cmd->keys[0], now_ms);
	char num[32];

	r->nv = 1;
	r->v[0] = -2;
	if (e != NULL) {
		r->v[0] =
		    e->expire_ms ? (e->expire_ms - now_ms + 999) / 1000 : -1;
		if (e->str != NULL) {
			stm_strs_add(r, e->str);
		} else {
			for (unsigned i = 0; i < e->nf; i++) {
				stm_strs_add(r, e->f[i].name);
				stm_number(num, sizeof(num), e->f[i].v);
				stm_strs_add(r, num);
			}
		}
	}
	stm_unlock(&k, now_ms);
}

static void
stm_set(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now_ms = st_now_ms();
	struct stm_key k;
	struct stm_entry *e = stm_lock(&k, cmd->keys[0], now_ms);
	const char *v = cmd->str != NULL ? cmd->str : "0";

	if (e != NULL)
		stm_remove(k.sh, e);
	e = stm_create(k.sh, k.key, k.h);
	e->str = px_strdup(v);
	e->size += strlen(v) + 1;
	k.sh->bytes += strlen(v) + 1;
	stm_expire_in(e, now_ms, cmd->nargs > 0 ? cmd->args[0] * 1000 : 0);
	stm_unlock(&k, now_ms);
	r->nv = 0;
}

static void
stm_del(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now_ms = st_now_ms();

	r->nv = 1;
	for (unsigned i = 0; i < cmd->nkeys; i++) {
		struct stm_key k;
		struct stm_entry *e = stm_lock(&k, cmd->keys[i], now_ms);

		if (e != NULL) {
			stm_remove(k.sh, e);
			r->v[0]++;
		}
		stm_unlock(&k, now_ms);
	}
}

static void
stm_keys(const struct st_cmd *cmd, struct st_reply *r)
{
	const int64_t now_ms = st_now_ms();
	const char *prefix = cmd->keys[0];
	size_t plen = strlen(prefix);
	int64_t max = cmd->nargs > 0 ? cmd->args[0] : 1000;

	for (unsigned s = 0; s < STM_SHARDS; s++) {
		struct stm_shard *sh = &stm.shards[s];

		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (struct stm_entry *e = sh->table[b]; e != NULL;
			     e = e->next)
				if ((int64_t)r->nstrs < max &&
				    !stm_expired(e, now_ms) &&
				    strncmp(e->key, prefix, plen) == 0)
					stm_strs_add(r, e->key);
		pthread_mutex_unlock(&sh->lock);
	}
}

static int
stm_run(const struct st_cmd *cmd, struct st_reply *r)
{
	memset(r, 0, sizeof(*r));
	if (!stm.open) {
		r->status = -1;
		snprintf(r->error, sizeof(r->error), "store not open");
		return -1;
	}
	if (cmd->nkeys == 0 || cmd->nkeys > ST_MAX_KEYS) {
		r->status = -1;
		snprintf(r->error, sizeof(r->error), "bad key count");
		return -1;
	}
	switch (cmd->op) {
	case ST_GREYLIST:
		stm_greylist(cmd, r);
		break;
	case ST_RATELIMIT:
		stm_ratelimit(cmd, r);
		break;
	case ST_REP_GET:
		stm_rep(cmd, r, false);
		break;
	case ST_REP_ADD:
		stm_rep(cmd, r, true);
		break;
	case ST_SET:
		stm_set(cmd, r);
		break;
	case ST_DEL:
		stm_del(cmd, r);
		break;
	case ST_GET:
		stm_get(cmd, r);
		break;
	case ST_KEYS:
		stm_keys(cmd, r);
		break;
	case ST_SISMEMBER:
		/* No sets here: the config keeps recipients_redis away. */
		r->status = -1;
		snprintf(r->error, sizeof(r->error),
		         "the memory store keeps no sets");
		return -1;
	default:
		r->status = -1;
		snprintf(r->error, sizeof(r->error), "unknown operation");
		return -1;
	}
	return 0;
}

static int
stm_call(struct px_loop *loop, const struct st_cmd *cmd, st_done_fn *done,
         void *arg, struct st_reply *r, struct st_req **req_r)
{
	(void)loop;
	(void)done;
	(void)arg;
	*req_r = NULL;
	stm_run(cmd, r);
	return 1;
}

static void
stm_cancel(struct st_req *req)
{
	(void)req;
}

static int
stm_call_sync(const struct st_cmd *cmd, double timeout, struct st_reply *r)
{
	(void)timeout;
	return stm_run(cmd, r);
}

static int
stm_open(const struct px_config *cfg, const char **error_r)
{
	uint64_t key[2];

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		*error_r = "getrandom failed";
		return -1;
	}
	stm.k0 = key[0];
	stm.k1 = key[1];
	stm.shard_max = cfg->store_memory_max / STM_SHARDS;
	for (unsigned i = 0; i < STM_SHARDS; i++) {
		struct stm_shard *sh = &stm.shards[i];

		pthread_mutex_init(&sh->lock, NULL);
		sh->nbuckets = 64;
		sh->table = px_calloc(sh->nbuckets, sizeof(*sh->table));
	}
	stm.open = true;
	return 0;
}

static void
stm_close(void)
{
	if (!stm.open)
		return;
	for (unsigned i = 0; i < STM_SHARDS; i++) {
		struct stm_shard *sh = &stm.shards[i];

		while (sh->lru_tail != NULL)
			stm_remove(sh, sh->lru_tail);
		free(sh->table);
		sh->table = NULL;
		pthread_mutex_destroy(&sh->lock);
	}
	stm.open = false;
}

const struct st_backend st_memory = {
    .name = "memory",
    .open = stm_open,
    .close = stm_close,
    .call = stm_call,
    .cancel = stm_cancel,
    .call_sync = stm_call_sync,
};
