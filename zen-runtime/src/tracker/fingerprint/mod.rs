//! Statement fingerprints: the SQL text with every literal, placeholder and
//! comment replaced or removed, value lists collapsed and the spacing
//! normalised, so that the same statement with other values groups together
//! and no value (which may hold personal data) reaches a report, an event,
//! a header, a metric or a page.
//!
//! ```
//! use zen_runtime::fingerprint::{Dialect, fingerprint};
//!
//! let a = fingerprint("SELECT * FROM users WHERE id = 42 AND name = 'o''hara'", Dialect::Postgres);
//! let b = fingerprint("SELECT *\n  FROM users   WHERE id=$1 AND name = $2 -- by name", Dialect::Postgres);
//! assert_eq!(a, "SELECT * FROM users WHERE id = ? AND name = ?");
//! assert_eq!(a, b);
//! let list = fingerprint("SELECT a FROM t WHERE id IN (1, 2, 3)", Dialect::Postgres);
//! assert_eq!(list, "SELECT a FROM t WHERE id IN (...)");
//! ```
//!
//! Where a literal ends depends on the database (and on some of its
//! settings), so the text is read by the rules of its [`Dialect`]:
//! PostgreSQL, SQLite, MySQL, and for any other backend (such as
//! `instrument::query("memcached", ..)`) the most careful reading of all
//! three. Where two readings could disagree on where a value ends (a
//! backslash in a string under `standard_conforming_strings` or MySQL's
//! `NO_BACKSLASH_ESCAPES`, a nested comment, a double-quoted string in
//! SQLite or MySQL, MySQL's `#` comments), zen drops the rest of the
//! statement (marked `…`) rather than risk keeping part of a value. A
//! property test checks, over generated hostile SQL, that no string, number
//! or comment that the independent tokenizer of `sqlparser` finds survives,
//! and tests follow values through events, `Display`, `Debug`,
//! `Server-Timing` and problem documents.
//!
//! Every statement is read in one pass, in time linear in its length (under
//! 1.1 ms for the worst 1 MiB inputs, BENCHMARKS.md), and the fingerprint is
//! at most [`MAX_LEN`] bytes: a longer one ends with `…#` and a hash of what
//! was read, up to 16 KiB past that point, so statements that differ late
//! still differ. Fingerprints are cached per thread, at most 256 KiB of SQL
//! text; statements longer than 4 KiB (dynamic SQL) are never cached. zen's
//! own bookkeeping is never charged to a scope's memory.

mod lexer;
mod writer;

use lexer::{Skipped, Token};
use std::cell::RefCell;
use std::sync::Arc;

use crate::tracker::hash::FxHashMap;
pub use writer::MAX_LEN;

/// The SQL dialect a statement is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: `"identifiers"`, `$1`, `$tag$...$tag$`, `E'...'`, nested
    /// comments.
    Postgres,
    /// SQLite: `"x"` may be a string where no column is named x; a backslash
    /// is never an escape.
    Sqlite,
    /// MySQL and MariaDB: `"..."` is a string, `#` starts a comment.
    MySql,
    /// Any other system: the most careful reading of each.
    Generic,
}

impl Dialect {
    /// The dialect of a backend as zen names it (`"PostgreSQL"`, `"SQLite"`,
    /// `"MySQL"`, the names sqlx gives its databases, in any case);
    /// [`Dialect::Generic`] for any other.
    #[must_use]
    #[inline]
    pub fn of_backend(backend: &str) -> Dialect {
        // zen's own wrappers name their backends exactly so: no folding.
        match backend {
            "PostgreSQL" => return Dialect::Postgres,
            "SQLite" => return Dialect::Sqlite,
            "MySQL" => return Dialect::MySql,
            _ => {}
        }
        let is = |name: &str| backend.eq_ignore_ascii_case(name);
        if is("PostgreSQL") || is("postgres") {
            Dialect::Postgres
        } else if is("SQLite") {
            Dialect::Sqlite
        } else if is("MySQL") || is("MariaDB") {
            Dialect::MySql
        } else {
            Dialect::Generic
        }
    }
}

/// The fingerprint of `sql` read as `dialect`:
/// `SELECT * FROM users WHERE id = 42 AND name = 'ann'` and
/// `SELECT *  FROM users WHERE id=$1 AND name=$2` both become
/// `SELECT * FROM users WHERE id = ? AND name = ?` (keywords stay as
/// written; values, placeholders, comments and spacing do not), and
/// `IN (1, 2, 3)` or `VALUES (1, 'a'), (2, 'b')` become `IN (...)` and
/// `VALUES (...)`.
#[must_use]
pub fn fingerprint(sql: &str, dialect: Dialect) -> String {
    let mut lexer = lexer::Lexer::new(sql, dialect);
    let mut writer = writer::Writer::new(sql.len());
    let mut stop_at = usize::MAX;
    while let Some(token) = lexer.next_token() {
        if !writer.token(token) {
            break;
        }
        if !writer.full() {
            stop_at = usize::MAX;
            continue;
        }
        // Past the bound, a list of values only needs its end found.
        if let Some(depth) = writer.open_list() {
            let more = match lexer.skip_values(depth) {
                Skipped::Closed => writer.token(Token::Punct(")")),
                Skipped::Other(token) => {
                    writer.list_broken();
                    writer.token(token)
                }
                Skipped::End => false,
            };
            if !more {
                break;
            }
            continue;
        }
        if lexer.pos() > stop_at {
            writer.stop();
            break;
        }
        if stop_at == usize::MAX {
            stop_at = lexer.pos().saturating_add(READ_PAST_FULL);
        }
    }
    writer.finish()
}

/// Once the text is at its bound, how much more of the statement is read to
/// tell long statements apart: what follows is the same statement's tail
/// (generated lists and rows), and reading all of a 1 MiB statement would
/// cost a millisecond for a hash.
const READ_PAST_FULL: usize = 16 * 1024;

/// Statements longer than this are fingerprinted on every use instead of
/// being cached: dynamic SQL (generated `IN` lists) must not fill memory.
const MAX_CACHED_SQL: usize = 4 * 1024;
/// At most this many bytes of SQL text are cached per thread.
const MAX_CACHE_BYTES: usize = 256 * 1024;
const MAX_CACHE_ENTRIES: usize = 512;

#[derive(Default)]
struct Cache {
    /// One map per way of reading a text: each [`Dialect`], then shapes.
    by_reading: [FxHashMap<Arc<str>, Shared>; 5],
    /// The statement last looked up: one run again (in a loop, on a busy
    /// route) is found by one comparison of its text, without hashing it.
    last: Option<(Arc<str>, usize, Shared)>,
    bytes: usize,
    entries: usize,
}

thread_local! {
    // The statements a thread runs repeat: fingerprint each once.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The operation of a statement from a fixed set (`SELECT`, `INSERT`, ...,
/// or a Redis command), else `OTHER`: never text of the statement's own.
/// Found once per fingerprint, when it is made, so a plain search will do.
pub(crate) fn operation_name(fingerprint: &str) -> &'static str {
    const KNOWN: [&str; 44] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "GET",
        "SET",
        "DEL",
        "MGET",
        "MSET",
        "HGET",
        "HSET",
        "HGETALL",
        "EXPIRE",
        "INCR",
        "DECR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "BLPOP",
        "BRPOP",
        "SADD",
        "SREM",
        "ZADD",
        "ZRANGE",
        "PIPELINE",
        "PUBLISH",
        "EVAL",
        "EVALSHA",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "COPY",
        "CALL",
        "SHOW",
        "EXPLAIN",
        "VALUES",
    ];
    let first = fingerprint.split(|c: char| !c.is_ascii_alphabetic()).find(|w| !w.is_empty()).unwrap_or("");
    KNOWN.iter().find(|k| k.eq_ignore_ascii_case(first)).copied().unwrap_or("OTHER")
}

/// Statements and commands that change nothing a client keeps: the first
/// word of a SQL read or of transaction control, and Redis's reads. Any
/// other statement may write.
const READS: [&str; 66] = [
    // SQL.
    "SELECT",
    "SHOW",
    "VALUES",
    "TABLE",
    "DESCRIBE",
    "DESC",
    "BEGIN",
    "START",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    // Redis.
    "GET",
    "MGET",
    "GETRANGE",
    "STRLEN",
    "EXISTS",
    "TTL",
    "PTTL",
    "TYPE",
    "KEYS",
    "SCAN",
    "HGET",
    "HMGET",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "HSCAN",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SSCAN",
    "SRANDMEMBER",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZSCORE",
    "ZMSCORE",
    "ZCARD",
    "ZCOUNT",
    "ZRANK",
    "ZREVRANK",
    "ZSCAN",
    "XRANGE",
    "XREVRANGE",
    "XLEN",
    "PFCOUNT",
    "BITCOUNT",
    "GETBIT",
    "GEOPOS",
    "GEODIST",
    "PING",
    "ECHO",
    "DBSIZE",
    "INFO",
    "TIME",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
];

/// Statements that may do part of their work and then fail (several
/// statements in one text count too): a failure of one says nothing of
/// what it left behind. DDL is here for MySQL, which commits around it.
const PARTIAL: [&str; 30] = [
    "CALL",
    "DO",
    "EXEC",
    "EXECUTE",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "PIPELINE",
    "MULTI",
    "CREATE",
    "ALTER",
    "DROP",
    "TRUNCATE",
    "RENAME",
    "LOCK",
    "UNLOCK",
    "GRANT",
    "REVOKE",
    "COPY",
    "VACUUM",
    "REINDEX",
    "CLUSTER",
    "REFRESH",
    "IMPORT",
    "ANALYZE",
    "OPTIMIZE",
    "PRAGMA",
];

/// What a statement may do to what a system keeps, read from its
/// fingerprint: what a refused request says about its writes rests on it,
/// so anything not known to be a read is a write, and anything not known
/// to fail whole may fail halfway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Effect {
    /// It may change what the system keeps.
    pub(crate) writes: bool,
    /// A failure the system answers with leaves nothing of it behind: one
    /// statement, and not one of [`PARTIAL`].
    pub(crate) whole: bool,
}

/// The [`Effect`] of a statement. A `WITH` writes when it holds a write
/// (`WITH x AS (DELETE ...)`), or when its text was cut before the end
/// could be seen; `SELECT ... INTO` writes; `EXPLAIN ANALYZE` runs its
/// statement; a Redis pipeline writes when any of its commands does; a
/// text of several statements writes when any of them does. A `SELECT` that
/// calls a function with side effects is taken for a read: zen cannot see
/// into it.
pub(crate) fn effect(fingerprint: &str) -> Effect {
    let cut = fingerprint.ends_with('…') || fingerprint.contains("…#");
    let mut statements = fingerprint.split(';').filter(|s| !s.trim().is_empty()).peekable();
    let Some(first) = statements.next() else {
        // No statement at all: nothing done. No word (`?`: a command zen
        // would not name): anything.
        let none = fingerprint.trim().trim_matches(';').trim().is_empty();
        return Effect { writes: !none, whole: none };
    };
    let several = statements.peek().is_some();
    let mut writes = writes(first, cut);
    for other in statements {
        writes |= self::writes(other, cut);
    }
    let word = first.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).find(|w| !w.is_empty());
    let partial = word.is_none_or(|w| PARTIAL.iter().any(|p| w.eq_ignore_ascii_case(p)));
    Effect { writes, whole: !several && !cut && !partial }
}

/// Whether one statement may write (see [`effect`]).
fn writes(statement: &str, cut: bool) -> bool {
    let mut words =
        statement.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).filter(|w| !w.is_empty());
    let Some(first) = words.next() else { return true };
    let is = |word: &str, name: &str| word.eq_ignore_ascii_case(name);
    if is(first, "WITH") {
        return cut || words.any(|w| ["INSERT", "UPDATE", "DELETE", "MERGE", "INTO"].iter().any(|dml| is(w, dml)));
    }
    if is(first, "SELECT") {
        return words.any(|w| is(w, "INTO"));
    }
    if is(first, "EXPLAIN") {
        return words.any(|w| is(w, "ANALYZE") || is(w, "ANALYSE"));
    }
    if is(first, "PIPELINE") {
        return cut || words.any(|w| !READS.iter().any(|read| is(w, read)));
    }
    !READS.iter().any(|read| is(first, read))
}

/// A statement's fingerprint, shared, and its operation.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) text: Arc<str>,
    /// From [`operation_name`]: `SELECT`, `INSERT`, ..., `OTHER`; for the
    /// exporters.
    #[cfg_attr(
        not(any(feature = "metrics", feature = "opentelemetry", feature = "dashboard", feature = "lock")),
        allow(dead_code)
    )]
    pub(crate) operation: &'static str,
    pub(crate) effect: Effect,
}

impl Shared {
    fn of(sql: &str, dialect: Dialect) -> Shared {
        let text: Arc<str> = fingerprint(sql, dialect).into();
        Shared { operation: operation_name(&text), effect: effect(&text), text }
    }
}

/// The fingerprint of `sql`, shared. Computed once per thread for short
/// statements, which is what most are; zen's own memory, which no scope is
/// charged for.
pub(crate) fn shared(sql: &str, dialect: Dialect) -> Shared {
    cached(sql, dialect as usize, || Shared::of(sql, dialect))
}

/// A shape an adapter made of an operation (a document store's command and
/// the keys of its filter; no value in it): kept as given, never read as
/// SQL; one longer than [`MAX_LEN`] bytes is cut and marked with a hash of
/// all of it like a long statement, within `MAX_LEN`. `operation`: the
/// adapter's name for its kind.
pub(crate) fn shaped(shape: &str, operation: &'static str) -> Shared {
    const SHAPES: usize = 4;
    cached(shape, SHAPES, || {
        let mut text = shape.to_owned();
        if text.len() > MAX_LEN {
            use std::hash::Hasher as _;
            let mut hash = crate::tracker::hash::FxHasher::default();
            hash.write(shape.as_bytes());
            // Room for ` …#` and eight hex digits.
            let cut = (0..=MAX_LEN - 16).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text.truncate(cut);
            text.push_str(&format!(" …#{:08x}", hash.finish() >> 32));
        }
        Shared { text: text.into(), operation, effect: Effect { writes: true, whole: true } }
    })
}

/// The [`Shared`] of `text` read the way of slot `reading`, from this
/// thread's cache; `make` computes it on a miss.
fn cached(text: &str, reading: usize, make: impl Fn() -> Shared) -> Shared {
    if text.len() > MAX_CACHED_SQL {
        return crate::tracker::alloc::untracked(make);
    }
    let cached = CACHE.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if let Some((last, r, shared)) = &cache.last
            && *r == reading
            && **last == *text
        {
            return Some(shared.clone());
        }
        if let Some((key, shared)) = cache.by_reading[reading].get_key_value(text) {
            let shared = shared.clone();
            cache.last = Some((Arc::clone(key), reading, shared.clone()));
            return Some(shared);
        }
        // A miss allocates: zen's memory, not the scope's.
        crate::tracker::alloc::untracked(|| {
            let shared = make();
            if cache.entries >= MAX_CACHE_ENTRIES || cache.bytes + text.len() > MAX_CACHE_BYTES {
                *cache = Cache::default();
            }
            cache.bytes += text.len() + shared.text.len();
            cache.entries += 1;
            let key: Arc<str> = text.into();
            cache.by_reading[reading].insert(Arc::clone(&key), shared.clone());
            cache.last = Some((key, reading, shared.clone()));
            Some(shared)
        })
    });
    // The cache is busy or gone (a thread's end): computed here.
    cached.ok().flatten().unwrap_or_else(|| crate::tracker::alloc::untracked(make))
}

#[cfg(test)]
mod tests {
    use super::{Dialect, Effect, MAX_LEN, effect, fingerprint, operation_name};

    #[test]
    fn anything_not_known_to_read_may_write_and_may_fail_halfway() {
        // (statement, writes, whole)
        let cases = [
            ("SELECT * FROM t WHERE id = ?", false, true),
            ("select 1", false, true),
            ("  (SELECT 1)", false, true),
            ("SELECT id FROM t FOR UPDATE", false, true),
            ("WITH x AS (SELECT 1) SELECT * FROM x", false, true),
            ("EXPLAIN SELECT 1", false, true),
            ("BEGIN", false, true),
            ("ROLLBACK", false, true),
            ("SAVEPOINT sp", false, true),
            ("RELEASE SAVEPOINT sp", false, true),
            ("SHOW search_path", false, true),
            ("GET", false, true),
            ("HGETALL", false, true),
            ("PIPELINE GET MGET TTL", false, false),
            ("", false, true),
            ("INSERT INTO t VALUES (...)", true, true),
            ("UPDATE t SET a = ?", true, true),
            ("DELETE FROM t", true, true),
            ("COMMIT", true, true),
            ("INSERT INTO t VALUES (?);", true, true),
            ("CREATE TABLE t (id INT)", true, false),
            ("CREATE INDEX CONCURRENTLY i ON t (a)", true, false),
            ("WITH d AS (DELETE FROM t RETURNING id) SELECT * FROM d", true, true),
            ("with x as (select 1) insert into t select * from x", true, true),
            ("WITH x AS (SELECT a, b, c FROM t) SELECT …", true, false),
            ("SELECT * INTO archive FROM t", true, true),
            ("SELECT 1; DELETE FROM t", true, false),
            ("INSERT INTO a VALUES (?); INSERT INTO b VALUES (?)", true, false),
            ("EXPLAIN ANALYZE DELETE FROM t", true, true),
            ("CALL do_it(?)", true, false),
            ("SET", true, true),
            ("INCR", true, true),
            ("EVAL", true, false),
            ("PIPELINE GET SET", true, false),
            ("JSON.SET", true, true),
            ("?", true, false),
            ("OTHER", true, true),
        ];
        for (statement, writes, whole) in cases {
            assert_eq!(effect(statement), Effect { writes, whole }, "{statement:?}");
        }
    }

    #[test]
    fn operations_come_from_a_fixed_set() {
        let cases = [
            ("SELECT id FROM users WHERE id = $1", "SELECT"),
            ("  with t AS (SELECT ?) SELECT * FROM t", "WITH"),
            ("(SELECT 1) UNION (SELECT 2)", "SELECT"),
            ("GET", "GET"),
            ("secret_procedure(?)", "OTHER"),
            ("", "OTHER"),
            ("savepoint sp1", "SAVEPOINT"),
            // Longer than any known word.
            ("SAVEPOINTS", "OTHER"),
            ("hgetall key", "HGETALL"),
        ];
        for (statement, operation) in cases {
            assert_eq!(operation_name(statement), operation, "{statement}");
        }
    }

    fn pg(sql: &str) -> String {
        fingerprint(sql, Dialect::Postgres)
    }

    #[test]
    fn values_and_spacing_do_not_matter() {
        let a = pg("SELECT * FROM users WHERE id = 42 AND name = 'o''hara'");
        let b = pg("SELECT *\n  FROM users   WHERE id=$1 AND name = $2 -- by name");
        assert_eq!(a, "SELECT * FROM users WHERE id = ? AND name = ?");
        assert_eq!(a, b);
        let sqlite = fingerprint("select x from t where y = ?1 and z = :name", Dialect::Sqlite);
        assert_eq!(sqlite, "select x from t where y = ? and z = ?");
    }

    #[test]
    fn lists_collapse_and_identifiers_stay() {
        assert_eq!(pg("SELECT a FROM t WHERE id IN (1, 2, 3)"), "SELECT a FROM t WHERE id IN (...)");
        assert_eq!(pg("SELECT a FROM t WHERE id IN (7)"), "SELECT a FROM t WHERE id IN (...)");
        assert_eq!(pg("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')"), "INSERT INTO t (a, b) VALUES (...)");
        assert_eq!(pg("INSERT INTO t VALUES ($1, $2), ($3, now())"), "INSERT INTO t VALUES (...), (?, now())");
        assert_eq!(
            pg("SELECT a FROM t WHERE id IN (SELECT b FROM u)"),
            "SELECT a FROM t WHERE id IN (SELECT b FROM u)"
        );
        assert_eq!(pg(r#"SELECT "user"."id2" FROM "user""#), r#"SELECT "user"."id2" FROM "user""#);
        assert_eq!(pg("SELECT $body$ it's $1 $body$, 1.5e-3"), "SELECT ?, ?");
        assert_eq!(pg("/* app */ SELECT pg_sleep(5)"), "SELECT pg_sleep(?)");
        assert_eq!(pg("SELECT a::text FROM t"), "SELECT a::text FROM t");
    }

    #[test]
    fn list_lengths_never_make_two_fingerprints() {
        let list = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let short = pg(&format!("SELECT a FROM t WHERE id IN ({}) AND b = 1", list(3)));
        let long = pg(&format!("SELECT a FROM t WHERE id IN ({}) AND b = 1", list(50_000)));
        assert_eq!(short, long);
        let rows = |n: usize| vec!["(1, 'a')"; n].join(", ");
        assert_eq!(
            pg(&format!("INSERT INTO t VALUES {}", rows(2))),
            pg(&format!("INSERT INTO t VALUES {}", rows(9_000)))
        );
    }

    #[test]
    fn literals_that_fooled_the_old_reader_are_dropped() {
        // `'C:\'` ends at its second quote under the default settings, not under others.
        assert_eq!(pg(r"SELECT 'C:\', 'hunter2'"), "SELECT ?…");
        assert_eq!(fingerprint(r"SELECT 'C:\', 'hunter2'", Dialect::Sqlite), "SELECT ?, ?");
        assert_eq!(pg("SELECT 1 /* a /* b */ hunter2 */ FROM t"), "SELECT ? FROM t");
        assert_eq!(
            fingerprint(r#"SELECT * FROM t WHERE a = "hunter2""#, Dialect::Sqlite),
            "SELECT * FROM t WHERE a = ?"
        );
        assert_eq!(fingerprint(r#"SELECT "t"."a" FROM "t""#, Dialect::Sqlite), r#"SELECT "t"."a" FROM "t""#);
        assert_eq!(
            fingerprint(r#"SELECT * FROM t WHERE a = "hunter2""#, Dialect::MySql),
            "SELECT * FROM t WHERE a = ?"
        );
        assert_eq!(fingerprint("SELECT 1 # hunter2\nFROM t", Dialect::MySql), "SELECT ? FROM t");
        assert_eq!(pg("SELECT E'it\\'s hunter2' FROM t"), "SELECT ? FROM t");
        assert_eq!(pg("SELECT 'never closed hunter2"), "SELECT ?…");
    }

    #[test]
    fn long_statements_are_bounded_and_still_told_apart() {
        let columns = (0..200).map(|i| format!("column_{i}")).collect::<Vec<_>>().join(", ");
        let by_id = pg(&format!("SELECT {columns} FROM articles WHERE id = $1"));
        let by_slug = pg(&format!("SELECT {columns} FROM articles WHERE slug = $1"));
        assert!(by_id.len() <= MAX_LEN + 16, "{}", by_id.len());
        assert!(by_id.contains(" …#"), "{by_id}");
        assert_ne!(by_id, by_slug);
        assert_eq!(by_id, pg(&format!("SELECT {columns} FROM articles WHERE id = 7")));
    }
}
