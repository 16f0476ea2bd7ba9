/*
 * tokenizer_bpe_load.c — building a byte-level BPE tokenizer (Llama-3, as
 * MobileLLM-R1 ships it) from a Hugging Face tokenizer.json or from GGUF
 * metadata (tokenizer.ggml.model = gpt2). Both feed one builder: pieces are
 * stored as raw bytes (GPT-2's byte-to-unicode mapping undone here, once),
 * merges become a pair -> (rank, id) hash table, added tokens a second piece
 * table matched before pre-tokenization. Only the Llama-3 pre-tokenizer is
 * implemented (tokenizer_bpe.c); anything else is refused by name.
 */
#include "gguf.h"
#include "json.h"
#include "tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* tokenizer.json of Llama 3 is 9 MB; configs are small. */
#define JSON_FILE_MAX   ((size_t)64 << 20)
#define CONFIG_FILE_MAX ((size_t)4 << 20)
#define BPE_VOCAB_MAX   (1 << 22)
#define BPE_MERGES_MAX  (1 << 24)

/* The pre-tokenizer regex of Llama 3 (tokenizer.json spells it so). */
static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- GPT-2 byte-to-unicode, undone ---------------------------------------- */

/* GPT-2 writes byte b as the code point b when b is printable Latin-1
 * (33..126, 161..172, 174..255) and as 256 + k for the k-th other byte in
 * increasing order. byte_of[cp] inverts that for cp < 324 (-1: not used). */
static void byte_map(int16_t byte_of[324])
{
	int k = 0;

	for (int i = 0; i < 324; i++)
		byte_of[i] = -1;
	for (int b = 0; b < 256; b++) {
		bool direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
		if (direct)
			byte_of[b] = (int16_t)b;
		else
			byte_of[256 + k++] = (int16_t)b;
	}
}

/* Decodes a byte-level piece s[0, n) into raw bytes at out (room for n);
 * returns the length, or -1 when s uses a character outside the mapping. */
static long bl_decode(const int16_t byte_of[324], const char *s, size_t n, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0;

	while (i < n) {
		size_t k = mllm_utf8_len(u + i, n - i);
		uint32_t cp;

		if (k == 0)
			return -1;
		cp = k == 1 ? u[i]
		            : (k == 2 ? (uint32_t)(u[i] & 0x1f) << 6 | (u[i + 1] & 0x3f) : 0xffff);
		if (cp >= 324 || byte_of[cp] < 0)
			return -1;
		out[o++] = (char)byte_of[cp];
		i += k;
	}
	return (long)o;
}

/* ---- The builder ------------------------------------------------------------ */

typedef struct {
	mllm_tokenizer *tok;
	int16_t byte_of[324];
	size_t pos;      /* next free byte in tok->blob */
	size_t blob_cap; /* bytes allocated for the blob */
	uint8_t *filled; /* [n_vocab] whether the id has a piece */
	const char *src; /* file name for messages */
	char *err;
	size_t errlen;
} bpe_build;

static int build_begin(bpe_build *b, int32_t n_vocab, size_t blob, size_t n_merges)
{
	size_t cap = 16;

	b->tok = mllm__tok_alloc(n_vocab, blob);
	b->filled = mllm_try_calloc((size_t)n_vocab, 1);
	if (!b->tok || !b->filled)
		goto oom;
	b->tok->kind = TOK_BPE;
	b->blob_cap = blob;
	byte_map(b->byte_of);
	while (cap < 2 * n_merges + 1)
		cap <<= 1;
	b->tok->merges = mllm_try_malloc(cap * sizeof *b->tok->merges);
	if (!b->tok->merges)
		goto oom;
	for (size_t i = 0; i < cap; i++)
		b->tok->merges[i].left = -1;
	b->tok->merge_mask = (uint32_t)(cap - 1);
	return 0;
oom:
	return mllm__seterr(b->err, b->errlen, MLLM_ENOMEM, "%s: out of memory", b->src);
}

static void build_free(bpe_build *b)
{
	free(b->filled);
	mllm_tokenizer_free(b->tok);
	b->filled = NULL;
	b->tok = NULL;
}

/* Stores piece id: byte-level text (decoded here) or, for added tokens,
 * literal text. A later call for the same id (an added token that is also
 * in the vocabulary) replaces the piece. */
static int build_piece(bpe_build *b, int64_t id, const char *s, size_t n, int type, bool literal)
{
	mllm_tokenizer *tok = b->tok;
	long l;

	if (id < 0 || id >= tok->n_vocab)
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
		                    "%s: token id %lld out of range", b->src, (long long)id);
	if (n == 0 || n > (literal ? 1 : 2) * PIECE_MAX || b->pos + n + 1 > b->blob_cap)
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
		                    "%s: token %lld is empty or longer than %d bytes", b->src,
		                    (long long)id, PIECE_MAX);
	if (b->filled[id] && !literal)
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT, "%s: token id %lld used twice",
		                    b->src, (long long)id);
	if (literal) {
		memcpy(tok->blob + b->pos, s, n);
		l = (long)n;
	} else {
		l = bl_decode(b->byte_of, s, n, tok->blob + b->pos);
		if (l > PIECE_MAX)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: token %lld is longer than %d bytes", b->src,
			                    (long long)id, PIECE_MAX);
		if (l <= 0)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: token %lld (\"%.*s\") is not byte-level text",
			                    b->src, (long long)id, (int)(n < 40 ? n : 40), s);
	}
	tok->blob[b->pos + (size_t)l] = '\0';
	tok->off[id] = (uint32_t)b->pos;
	tok->len[id] = (uint16_t)l;
	tok->type[id] = (uint8_t)type;
	b->filled[id] = 1;
	b->pos += (size_t)l + 1;
	return 0;
}

/* The most bytes a piece can render as in the detokenizer: bytes that are
 * not part of a whole character may each become U+FFFD (3 bytes). */
static size_t render_max(const char *p, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n) {
		size_t k = mllm_utf8_len((const unsigned char *)p + i, n - i);
		o += k ? k : 3;
		i += k ? k : 1;
	}
	return o;
}

/* Indexes the pieces once all are stored. */
static int build_index(bpe_build *b)
{
	mllm_tokenizer *tok = b->tok;
	int32_t n = tok->n_vocab;
	int rc;

	rc = htab_init(&tok->normal, (size_t)n);
	if (rc == 0)
		rc = htab_init(&tok->reserved, (size_t)n);
	if (rc)
		return mllm__seterr(b->err, b->errlen, rc, "%s: out of memory", b->src);
	for (int32_t i = 0; i < n; i++) {
		bool added = tok->type[i] != PT_NORMAL;
		int32_t dup;

		if (!b->filled[i])
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: no token has id %d", b->src, (int)i);
		if (render_max(tok->blob + tok->off[i], tok->len[i]) > PIECE_MAX)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: token %d could decode to more than %d bytes",
			                    b->src, (int)i, PIECE_MAX);
		dup = htab_insert(tok, added ? &tok->reserved : &tok->normal, i);
		if (dup >= 0)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: tokens %d and %d are the same text", b->src,
			                    (int)dup, (int)i);
		if (added) {
			size_t l = tok->len[i];
			tok->added_first[(unsigned char)tok->blob[tok->off[i]]] = true;
			tok->added_last[(unsigned char)tok->blob[tok->off[i] + l - 1]] = true;
			if (tok->n_added == 0 || l < tok->added_min)
				tok->added_min = l;
			if (l > tok->added_max)
				tok->added_max = l;
			tok->n_added++;
		} else if (tok->len[i] > tok->max_piece) {
			tok->max_piece = tok->len[i];
		}
	}
	for (int c = 0; c < 256; c++) {
		char ch = (char)c;
		tok->byte_id[c] = htab_find(tok, &tok->normal, &ch, 1);
		if (tok->byte_id[c] < 0)
			return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
			                    "%s: no piece for byte 0x%02x (not byte-level BPE?)",
			                    b->src, c);
	}
	tok->unk_id = -1;
	tok->tight_ids = true; /* one byte never yields more than one id */
	return 0;
}

/* Adds merge `rank`: byte-level pieces a and b, both in the vocabulary, as
 * is their concatenation. The first (lowest-rank) merge of a pair wins. */
static int build_merge(bpe_build *b, const char *a, size_t al, const char *bb, size_t bl,
                       int32_t rank)
{
	mllm_tokenizer *tok = b->tok;
	char buf[2 * PIECE_MAX + 2];
	long la, lb;
	int32_t ia, ib, im;
	uint32_t i;

	if (al > PIECE_MAX || bl > PIECE_MAX)
		goto bad;
	la = bl_decode(b->byte_of, a, al, buf);
	lb = la > 0 ? bl_decode(b->byte_of, bb, bl, buf + la) : -1;
	if (la <= 0 || lb <= 0)
		goto bad;
	ia = htab_find(tok, &tok->normal, buf, (size_t)la);
	ib = htab_find(tok, &tok->normal, buf + la, (size_t)lb);
	im = htab_find(tok, &tok->normal, buf, (size_t)(la + lb));
	if (ia < 0 || ib < 0 || im < 0)
		goto bad;
	for (i = bpe_pair_hash(ia, ib) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
		bpe_merge *m = &tok->merges[i];
		if (m->left < 0) {
			*m = (bpe_merge){ia, ib, rank, im};
			tok->n_merges++;
			return 0;
		}
		if (m->left == ia && m->right == ib)
			return 0;
	}
bad:
	return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT,
	                    "%s: merge %d (\"%.*s\" + \"%.*s\") does not join two pieces into a "
	                    "piece",
	                    b->src, (int)rank, (int)(al < 30 ? al : 30), a,
	                    (int)(bl < 30 ? bl : 30), bb);
}

/* A merge written as "a b" (one space: spaces inside pieces are Ġ). */
static int build_merge_str(bpe_build *b, const char *s, size_t n, int32_t rank)
{
	const char *sp = memchr(s, ' ', n);

	if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1))
		return mllm__seterr(b->err, b->errlen, MLLM_EFORMAT, "%s: merge %d is not \"a b\"",
		                    b->src, (int)rank);
	return build_merge(b, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp - s) - 1, rank);
}

static int32_t id_of(const mllm_tokenizer *tok, const char *s)
{
	size_t n = strlen(s);
	int32_t id = htab_find(tok, &tok->reserved, s, n);
	return id >= 0 ? id : htab_find(tok, &tok->normal, s, n);
}

/* End of generation, the Llama-3 way: the EOS id, <|eot_id|> and <|eom_id|>
 * where the vocabulary has them, and 128008 (Llama 3.1's <|eom_id|>, named
 * <|reserved_special_token_4|> in older files) next to a 128009 <|eot_id|>,
 * as MobileLLM-R1's configs list 128001, 128008, 128009. */
static void llama3_eos(mllm_tokenizer *tok)
{
	int32_t eot = id_of(tok, "<|eot_id|>");

	mllm__tok_add_eos(tok, eot);
	mllm__tok_add_eos(tok, id_of(tok, "<|eom_id|>"));
	if (eot == 128009)
		mllm__tok_add_eos(tok, 128008);
}

/* ---- tokenizer.json ------------------------------------------------------------ */

static bool str_is(const mllm__json *v, const char *s)
{
	return v && v->type == MLLM_JSON_STRING && v->len == strlen(s) &&
	       memcmp(v->str, s, v->len) == 0;
}

/* Refuses what the encoder does not implement, naming it. */
static int check_json_pipeline(const mllm__json *root, const char *src, char *err, size_t errlen)
{
	const mllm__json *pre = mllm__json_get(root, "pre_tokenizer");
	const mllm__json *norm = mllm__json_get(root, "normalizer");
	const mllm__json *model = mllm__json_get(root, "model");
	const mllm__json *list, *split, *bl, *pat, *v;

	if (!model || model->type != MLLM_JSON_OBJECT)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: no \"model\" object: not a Hugging Face tokenizer.json",
		                    src);
	if (!str_is(mllm__json_get(model, "type"), "BPE"))
		return mllm__seterr(
		    err, errlen, MLLM_EUNSUPPORTED,
		    "%s: model.type is not \"BPE\" (only byte-level BPE tokenizer.json "
		    "files are supported)",
		    src);
	v = mllm__json_get(model, "byte_fallback");
	if (v && v->type == MLLM_JSON_TRUE)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: model.byte_fallback is not supported", src);
	v = mllm__json_get(model, "continuing_subword_prefix");
	if (v && v->type == MLLM_JSON_STRING && v->len > 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: model.continuing_subword_prefix is not supported", src);
	v = mllm__json_get(model, "end_of_word_suffix");
	if (v && v->type == MLLM_JSON_STRING && v->len > 0)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: model.end_of_word_suffix is not supported", src);
	if (norm && norm->type != MLLM_JSON_NULL)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: a normalizer is not supported (Llama 3 has none)", src);
	list = pre ? mllm__json_get(pre, "pretokenizers") : NULL;
	split = list ? mllm__json_at(list, 0) : NULL;
	bl = list ? mllm__json_at(list, 1) : NULL;
	pat = split ? mllm__json_get(split, "pattern") : NULL;
	if (!str_is(mllm__json_get(pre, "type"), "Sequence") || !list ||
	    list->type != MLLM_JSON_ARRAY || list->n != 2 ||
	    !str_is(mllm__json_get(split, "type"), "Split") ||
	    !str_is(pat ? mllm__json_get(pat, "Regex") : NULL, llama3_regex) ||
	    !str_is(mllm__json_get(split, "behavior"), "Isolated") ||
	    !str_is(mllm__json_get(bl, "type"), "ByteLevel"))
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: pre_tokenizer is not Llama 3's (Split on its regex, then "
		                    "ByteLevel); no other is implemented",
		                    src);
	v = mllm__json_get(split, "invert");
	if (v && v->type == MLLM_JSON_TRUE)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: pre_tokenizer Split with invert is not supported", src);
	v = mllm__json_get(bl, "add_prefix_space");
	if (v && v->type == MLLM_JSON_TRUE)
		return mllm__seterr(err, errlen, MLLM_EUNSUPPORTED,
		                    "%s: ByteLevel add_prefix_space is not supported", src);
	return 0;
}

/* Parses dir/name when it exists; *doc stays NULL when it does not. */
static int read_json(const char *dir, const char *name, size_t max, mllm__json_doc **doc, char *err,
                     size_t errlen)
{
	char path[4096], perr[256];
	unsigned char *data = NULL;
	size_t size = 0;
	int rc;

	*doc = NULL;
	if ((size_t)snprintf(path, sizeof path, "%s%s", dir, name) >= sizeof path)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "%s: path too long", dir);
	if (access(path, F_OK) != 0)
		return 0;
	rc = mllm__tok_read_file(path, max, &data, &size, err, errlen);
	if (rc)
		return rc;
	rc = mllm__json_parse((const char *)data, size, NULL, doc, perr, sizeof perr);
	free(data);
	if (rc)
		return mllm__seterr(err, errlen, rc, "%s: %s", path, perr);
	return 0;
}

/* A token given as "text" or {"content": "text"} (tokenizer_config.json). */
static int32_t token_ref(const mllm_tokenizer *tok, const mllm__json *v)
{
	if (v && v->type == MLLM_JSON_OBJECT)
		v = mllm__json_get(v, "content");
	if (!v || v->type != MLLM_JSON_STRING || memchr(v->str, '\0', v->len))
		return -1;
	return id_of(tok, v->str);
}

/* eos_token_id / bos_token_id: an integer or a list of integers. */
static void add_eos_ids(mllm_tokenizer *tok, const mllm__json *v)
{
	if (v && v->type == MLLM_JSON_NUMBER && v->is_int)
		mllm__tok_add_eos(tok, v->i >= 0 && v->i < INT32_MAX ? (int32_t)v->i : -1);
	if (v && v->type == MLLM_JSON_ARRAY)
		for (const mllm__json *e = v->child; e; e = e->next)
			if (e->type == MLLM_JSON_NUMBER && e->is_int && e->i >= 0 &&
			    e->i < INT32_MAX)
				mllm__tok_add_eos(tok, (int32_t)e->i);
}

static int32_t int_id(const mllm_tokenizer *tok, const mllm__json *v)
{
	if (v && v->type == MLLM_JSON_NUMBER && v->is_int && v->i >= 0 && v->i < tok->n_vocab)
		return (int32_t)v->i;
	return -1;
}

/* BOS, EOS and add_bos from the files next to tokenizer.json. */
static int json_specials(mllm_tokenizer *tok, const char *dir, char *err, size_t errlen)
{
	mllm__json_doc *tc = NULL, *gc = NULL, *mc = NULL;
	const mllm__json *t, *g, *m, *v;
	int rc;

	rc = read_json(dir, "tokenizer_config.json", CONFIG_FILE_MAX, &tc, err, errlen);
	if (rc == 0)
		rc = read_json(dir, "generation_config.json", CONFIG_FILE_MAX, &gc, err, errlen);
	if (rc == 0)
		rc = read_json(dir, "config.json", CONFIG_FILE_MAX, &mc, err, errlen);
	if (rc)
		goto out;
	t = tc ? mllm__json_root(tc) : NULL;
	g = gc ? mllm__json_root(gc) : NULL;
	m = mc ? mllm__json_root(mc) : NULL;

	tok->bos_id = token_ref(tok, mllm__json_get(t, "bos_token"));
	if (tok->bos_id < 0)
		tok->bos_id = int_id(tok, mllm__json_get(g, "bos_token_id"));
	if (tok->bos_id < 0)
		tok->bos_id = int_id(tok, mllm__json_get(m, "bos_token_id"));
	if (tok->bos_id < 0)
		tok->bos_id = id_of(tok, "<|begin_of_text|>");
	tok->eos_id = token_ref(tok, mllm__json_get(t, "eos_token"));
	mllm__tok_add_eos(tok, tok->eos_id);
	add_eos_ids(tok, mllm__json_get(g, "eos_token_id"));
	add_eos_ids(tok, mllm__json_get(m, "eos_token_id"));
	if (tok->eos_id < 0)
		tok->eos_id = id_of(tok, "<|end_of_text|>");
	mllm__tok_add_eos(tok, tok->eos_id);
	if (tok->n_eos > 0 && tok->eos_id < 0)
		tok->eos_id = tok->eos_ids[0];
	llama3_eos(tok);
	/* Llama-3 files whose post-processor adds no BOS are still meant to
	 * be fed one (the model configs name it): prepend it unless
	 * tokenizer_config.json says add_bos_token = false. */
	v = mllm__json_get(t, "add_bos_token");
	tok->add_bos = tok->bos_id >= 0 && !(v && v->type == MLLM_JSON_FALSE);
out:
	mllm__json_free(tc);
	mllm__json_free(gc);
	mllm__json_free(mc);
	return rc;
}

int mllm__bpe_load_json(const char *path, mllm_tokenizer **out, char *err, size_t errlen)
{
	unsigned char *data = NULL;
	size_t size = 0, blob = 0, n_merges;
	mllm__json_doc *doc = NULL;
	const mllm__json *root, *model, *vocab, *merges, *added, *v;
	bpe_build b = {.src = path, .err = err, .errlen = errlen};
	int64_t max_id = -1;
	char perr[256], dir[4096];
	const char *slash = strrchr(path, '/');
	int32_t rank = 0;
	int rc;

	*out = NULL;
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 0, path);
	rc = mllm__tok_read_file(path, JSON_FILE_MAX, &data, &size, err, errlen);
	if (rc)
		return rc;
	rc = mllm__json_parse((const char *)data, size, NULL, &doc, perr, sizeof perr);
	free(data);
	if (rc)
		return mllm__seterr(err, errlen, rc, "%s: %s", path, perr);
	root = mllm__json_root(doc);
	rc = check_json_pipeline(root, path, err, errlen);
	if (rc)
		goto out;
	model = mllm__json_get(root, "model");
	vocab = mllm__json_get(model, "vocab");
	merges = mllm__json_get(model, "merges");
	added = mllm__json_get(root, "added_tokens");
	if (!vocab || vocab->type != MLLM_JSON_OBJECT || !merges ||
	    merges->type != MLLM_JSON_ARRAY || (added && added->type != MLLM_JSON_ARRAY)) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
		                  "%s: model.vocab (object), model.merges (array) or added_tokens "
		                  "(array) missing or mistyped",
		                  path);
		goto out;
	}
	/* Sizes first: the id range and the blob. */
	for (v = vocab->child; v; v = v->next) {
		if (v->type != MLLM_JSON_NUMBER || !v->is_int || v->i < 0 ||
		    v->i >= BPE_VOCAB_MAX) {
			rc =
			    mllm__seterr(err, errlen, MLLM_EFORMAT,
			                 "%s: vocab entry \"%.40s\" has no valid id", path, v->key);
			goto out;
		}
		max_id = v->i > max_id ? v->i : max_id;
		blob += v->key_len + 1;
	}
	for (v = added ? added->child : NULL; v; v = v->next) {
		const mllm__json *id = mllm__json_get(v, "id"), *c = mllm__json_get(v, "content");
		if (!id || id->type != MLLM_JSON_NUMBER || !id->is_int || id->i < 0 ||
		    id->i >= BPE_VOCAB_MAX || !c || c->type != MLLM_JSON_STRING) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: an added_tokens entry lacks an id or content", path);
			goto out;
		}
		max_id = id->i > max_id ? id->i : max_id;
		blob += c->len + 1;
	}
	n_merges = merges->n;
	if (max_id < 255 || n_merges > BPE_MERGES_MAX) {
		rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: %lld tokens, %zu merges", path,
		                  (long long)max_id + 1, n_merges);
		goto out;
	}
	rc = build_begin(&b, (int32_t)(max_id + 1), blob, n_merges);
	for (v = vocab->child; v && rc == 0; v = v->next)
		rc = build_piece(&b, v->i, v->key, v->key_len, PT_NORMAL, false);
	for (v = added ? added->child : NULL; v && rc == 0; v = v->next) {
		const mllm__json *c = mllm__json_get(v, "content");
		bool special = mllm__json_get(v, "special") &&
		               mllm__json_get(v, "special")->type == MLLM_JSON_TRUE;
		rc = build_piece(&b, mllm__json_get(v, "id")->i, c->str, c->len,
		                 special ? PT_CONTROL : PT_USER_DEFINED, true);
	}
	if (rc == 0)
		rc = build_index(&b);
	for (v = merges->child; v && rc == 0; v = v->next, rank++) {
		const mllm__json *l = v->type == MLLM_JSON_ARRAY ? mllm__json_at(v, 0) : NULL;
		const mllm__json *r = l ? l->next : NULL;
		if (v->type == MLLM_JSON_STRING)
			rc = build_merge_str(&b, v->str, v->len, rank);
		else if (v->n == 2 && l->type == MLLM_JSON_STRING && r->type == MLLM_JSON_STRING)
			rc = build_merge(&b, l->str, l->len, r->str, r->len, rank);
		else
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT,
			                  "%s: merge %d is neither \"a b\" nor [a, b]", path,
			                  (int)rank);
	}
	if (rc)
		goto out;
	v = mllm__json_get(model, "ignore_merges");
	b.tok->ignore_merges = v && v->type == MLLM_JSON_TRUE;
	rc = json_specials(b.tok, dir, err, errlen);
	if (rc)
		goto out;
	*out = b.tok;
	b.tok = NULL;
	MLLM_LOG(MLLM_LOG_DEBUG, "tokenizer %s: byte-level BPE, %d tokens, %zu merges", path,
	         (int)(*out)->n_vocab, (*out)->n_merges);
out:
	build_free(&b);
	mllm__json_free(doc);
	return rc;
}

/* ---- GGUF (tokenizer.ggml.model = gpt2) -------------------------------------- */

int mllm__bpe_from_gguf(const struct mllm__gguf *g, mllm_tokenizer **out, char *err, size_t errlen)
{
	const char *src = mllm__gguf_path(g), *pre, *s;
	size_t pre_len, l, blob = 0;
	int et_tok = -1, et_types = -1, et_merges = -1;
	uint64_t n = 0, n_types = 0, n_merges = 0;
	const void *tokens = NULL, *types = NULL, *merges = NULL;
	bpe_build b = {.err = err, .errlen = errlen};
	int32_t v32;
	bool vb;
	int rc;

	*out = NULL;
	if (!src)
		src = "gguf";
	b.src = src;
	if (mllm__gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pre_len) != 0)
		return mllm__seterr(
		    err, errlen, MLLM_EUNSUPPORTED,
		    "%s: gpt2 tokenizer without tokenizer.ggml.pre: only the Llama-3 "
		    "pre-tokenizer (llama-bpe, smaug-bpe) is implemented",
		    src);
	if (!((pre_len == 9 && memcmp(pre, "llama-bpe", 9) == 0) ||
	      (pre_len == 9 && memcmp(pre, "smaug-bpe", 9) == 0)))
		return mllm__seterr(
		    err, errlen, MLLM_EUNSUPPORTED,
		    "%s: tokenizer.ggml.pre \"%.*s\" is not supported (only llama-bpe "
		    "and smaug-bpe, the Llama-3 regex)",
		    src, (int)(pre_len < 40 ? pre_len : 40), pre);
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.tokens", &et_tok, &n, &tokens);
	if (rc || et_tok != MLLM_GGUF_STRING || n < 256 || n > BPE_VOCAB_MAX)
		return mllm__seterr(
		    err, errlen, MLLM_EFORMAT,
		    "%s: tokenizer.ggml.tokens is missing, not strings, or of a bad "
		    "size",
		    src);
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.merges", &et_merges, &n_merges, &merges);
	if (rc || et_merges != MLLM_GGUF_STRING || n_merges > BPE_MERGES_MAX)
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.merges is missing or not strings", src);
	rc = mllm__gguf_get_arr(g, "tokenizer.ggml.token_type", &et_types, &n_types, &types);
	if (rc == 0 &&
	    ((et_types != MLLM_GGUF_INT32 && et_types != MLLM_GGUF_UINT32) || n_types != n))
		return mllm__seterr(err, errlen, MLLM_EFORMAT,
		                    "%s: tokenizer.ggml.token_type is not %llu int32s", src,
		                    (unsigned long long)n);
	if (rc)
		types = NULL;
	for (uint64_t i = 0; i < n; i++) {
		if (mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l) != 0)
			return mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad token %llu", src,
			                    (unsigned long long)i);
		blob += l + 1;
	}
	rc = build_begin(&b, (int32_t)n, blob, (size_t)n_merges);
	for (uint64_t i = 0; i < n && rc == 0; i++) {
		int32_t t = PT_NORMAL;
		rc = mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &l);
		if (rc) {
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad token %llu", src,
			                  (unsigned long long)i);
			break;
		}
		if (types)
			memcpy(&t, (const char *)types + 4 * i, 4);
		/* llama.cpp's types: 3 control, 4 user-defined (both written as
		 * literal text); normal and the rest are byte-level. */
		if (t == PT_CONTROL || t == PT_USER_DEFINED)
			rc = build_piece(&b, (int64_t)i, s, l, t, true);
		else
			rc = build_piece(&b, (int64_t)i, s, l, PT_NORMAL, false);
	}
	if (rc == 0)
		rc = build_index(&b);
	for (uint64_t i = 0; i < n_merges && rc == 0; i++) {
		rc = mllm__gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &l);
		if (rc)
			rc = mllm__seterr(err, errlen, MLLM_EFORMAT, "%s: bad merge %llu", src,
			                  (unsigned long long)i);
		else
			rc = build_merge_str(&b, s, l, (int32_t)i);
	}
	if (rc)
		goto fail;
	/* Both pre-tokenizer names stand for Llama 3's tiktoken-derived
	 * vocabulary, in which every piece encodes to itself: llama.cpp sets
	 * ignore_merges for llama-bpe, and Hugging Face's file does for both. */
	b.tok->ignore_merges = true;
	b.tok->bos_id = -1;
	b.tok->eos_id = -1;
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &v32) == 0 && v32 >= 0 &&
	    v32 < (int32_t)n)
		b.tok->bos_id = v32;
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &v32) == 0 && v32 >= 0 &&
	    v32 < (int32_t)n)
		b.tok->eos_id = v32;
	mllm__tok_add_eos(b.tok, b.tok->eos_id);
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.eot_token_id", &v32) == 0)
		mllm__tok_add_eos(b.tok, v32);
	if (mllm__gguf_get_i32(g, "tokenizer.ggml.eom_token_id", &v32) == 0)
		mllm__tok_add_eos(b.tok, v32);
	llama3_eos(b.tok);
	b.tok->add_bos = b.tok->bos_id >= 0;
	if (mllm__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &vb) == 0)
		b.tok->add_bos = vb && b.tok->bos_id >= 0;
	*out = b.tok;
	b.tok = NULL;
fail:
	build_free(&b);
	return rc;
}
