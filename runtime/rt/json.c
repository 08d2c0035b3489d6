/* rt/json.c: a JSON reader just large enough for safetensors headers: strings
 * (with escapes and surrogate pairs decoded to UTF-8), integers, object
 * members, integer arrays, and skipping any other value (bounded depth). */

/* ---- JSON, just enough for a safetensors header ------------------------------ */

typedef struct json {
    const unsigned char *p, *s, *end;
    const char *what; /* why parsing stopped */
} json;

static int js_fail(json *j, const char *what) {
    j->what = what;
    return -1;
}

static int js_peek(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
    return j->p < j->end ? *j->p : -1;
}

static int js_eat(json *j, int ch) { return js_peek(j) == ch ? (j->p++, 1) : 0; }

static int js_hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4) return js_fail(j, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = *j->p++, d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return js_fail(j, "bad \\u escape");
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* A JSON string, decoded to UTF-8 in a malloc'd buffer (out NULL: skipped). */
static int js_string(json *j, char **out) {
    static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* escape letter, then its character */
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    if (out) *out = NULL;
    if (!js_eat(j, '"')) return js_fail(j, "expected a string");
    const unsigned char *q = j->p;
    while (q < j->end && *q != '"') q += *q == '\\' ? 2 : 1;
    if (q >= j->end) return js_fail(j, "unterminated string");
    char *s = out ? malloc((size_t)(q - j->p) + 1) : NULL; /* decoding never makes the text longer */
    if (out && !s) return js_fail(j, "out of memory");
    const char *bad = NULL;
    size_t k = 0;
    while (!bad && *j->p != '"') {
        unsigned c = *j->p++, lo, utf = 0;
        if (c < 0x20) {
            bad = "control character in string";
        } else if (c == '\\') {
            int i = 0;
            for (c = *j->p++; esc[i] && (unsigned char)esc[i] != c; i += 2) continue;
            if (esc[i]) c = (unsigned char)esc[i + 1];
            else if (c != 'u') bad = "bad escape in string";
            else if (js_hex4(j, &c)) bad = j->what;
            else if (c >= 0xD800 && c < 0xDC00) { /* the high half of a surrogate pair */
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') bad = "unpaired surrogate";
                else if ((j->p += 2, js_hex4(j, &lo)) || lo < 0xDC00 || lo > 0xDFFF) bad = "bad surrogate pair";
                else c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf = !esc[i];
        }
        if (bad || !s) continue;
        if (!utf || c < 0x80) { /* raw bytes pass through; \u code points become UTF-8 */
            s[k++] = (char)c;
            continue;
        }
        unsigned nb = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        for (unsigned i = nb - 1; i > 0; i--, c >>= 6) s[k + i] = (char)(0x80 | (c & 0x3F));
        s[k] = (char)(lead[nb] | c);
        k += nb;
    }
    if (bad) return free(s), js_fail(j, bad);
    j->p++;
    if (s) s[k] = 0, *out = s;
    return 0;
}

/* An integer (no fraction or exponent). */
static int js_int(json *j, int64_t *v) {
    int neg = js_eat(j, '-');
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return js_fail(j, "expected an integer");
    uint64_t u = 0;
    for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
        if (u > ((uint64_t)INT64_MAX - 9) / 10) return js_fail(j, "integer too large");
        u = u * 10 + (uint64_t)(*j->p - '0');
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return js_fail(j, "expected an integer");
    *v = neg ? -(int64_t)u : (int64_t)u;
    return 0;
}

/* Steps through an object's members after its '{': 1 when a member follows
 * (its key in *key unless key is NULL, the ':' eaten), 0 at the closing '}',
 * -1 on error. */
static int js_member(json *j, int *first, char **key) {
    if (key) *key = NULL;
    if (*first) {
        *first = 0;
        if (js_eat(j, '}')) return 0;
    } else if (!js_eat(j, ',')) {
        return js_eat(j, '}') ? 0 : js_fail(j, "expected ',' or '}'");
    }
    if (js_string(j, key)) return -1;
    if (js_eat(j, ':')) return 1;
    if (key) free(*key), *key = NULL;
    return js_fail(j, "expected ':'");
}

/* Skips any JSON value (used for __metadata__ and unknown keys). */
static int js_skip(json *j, int depth) {
    static const char *const lits[] = {"true", "false", "null"};
    if (depth > 64) return js_fail(j, "nested too deeply");
    int c = js_peek(j), first = 1, more;
    if (c == '"') return js_string(j, NULL);
    if (c == '{') {
        j->p++;
        while ((more = js_member(j, &first, NULL)) > 0)
            if (js_skip(j, depth + 1)) return -1;
        return more;
    }
    if (c == '[') {
        j->p++;
        if (js_eat(j, ']')) return 0;
        do
            if (js_skip(j, depth + 1)) return -1;
        while (js_eat(j, ','));
        return js_eat(j, ']') ? 0 : js_fail(j, "expected ',' or ']'");
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        while (j->p < j->end && *j->p && strchr("+-.eE0123456789", *j->p)) j->p++;
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= l && !memcmp(j->p, lits[i], l)) return j->p += l, 0;
    }
    return js_fail(j, "expected a value");
}

/* An array of up to max integers; returns the count or -1. */
static int js_int_array(json *j, int64_t *v, int max, const char *toolong) {
    int n = 0;
    if (!js_eat(j, '[')) return js_fail(j, "expected '['");
    if (js_eat(j, ']')) return 0;
    do {
        if (n == max) return js_fail(j, toolong);
        if (js_int(j, &v[n++])) return -1;
    } while (js_eat(j, ','));
    return js_eat(j, ']') ? n : js_fail(j, "expected ',' or ']'");
}
