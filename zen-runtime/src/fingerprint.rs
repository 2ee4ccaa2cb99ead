//! Statement fingerprints: the SQL text with literals, placeholders,
//! comments and whitespace normalised, so that the same statement with other
//! values groups together and no value (which may hold personal data) is
//! kept.

/// The longest fingerprint kept; longer statements are cut, which keeps a
/// report's memory bounded whatever the SQL.
pub(crate) const MAX_LEN: usize = 300;

thread_local! {
    // The statements a thread runs repeat: fingerprint each once.
    static CACHE: std::cell::RefCell<crate::hash::FxHashMap<Box<str>, std::sync::Arc<str>>> =
        std::cell::RefCell::new(crate::hash::FxHashMap::default());
}

const CACHE_SIZE: usize = 512;

/// The fingerprint of `sql`, shared: computed once per thread and statement.
pub(crate) fn shared(sql: &str) -> std::sync::Arc<str> {
    let cached = CACHE.try_with(|cache| {
        let mut cache = cache.try_borrow_mut().ok()?;
        if let Some(fingerprint) = cache.get(sql) {
            return Some(std::sync::Arc::clone(fingerprint));
        }
        let fingerprint: std::sync::Arc<str> = fingerprint(sql).into();
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(sql.into(), std::sync::Arc::clone(&fingerprint));
        Some(fingerprint)
    });
    cached.ok().flatten().unwrap_or_else(|| fingerprint(sql).into())
}

/// `SELECT * FROM users WHERE id = 42 AND name = 'ann'` and
/// `select *  from users where id=$1 and name=$2` both become
/// `SELECT * FROM users WHERE id = ? AND name = ?` (keywords are left as
/// written; only values, placeholders and spacing change).
#[must_use]
pub fn fingerprint(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len().min(MAX_LEN));
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut pending_space = false;
    while i < bytes.len() && out.len() < MAX_LEN {
        let c = bytes[i];
        let token_start = i;
        i += 1;
        let token: Option<&str> = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                pending_space = !out.is_empty();
                None
            }
            b'-' if bytes.get(i) == Some(&b'-') => {
                i = find(bytes, i, b"\n").map_or(bytes.len(), |e| e + 1);
                pending_space = !out.is_empty();
                None
            }
            b'/' if bytes.get(i) == Some(&b'*') => {
                i = find(bytes, i + 1, b"*/").map_or(bytes.len(), |e| e + 2);
                pending_space = !out.is_empty();
                None
            }
            b'\'' => {
                i = end_of_quoted(bytes, i, b'\'');
                Some("?")
            }
            b'$' if bytes.get(i).is_some_and(u8::is_ascii_digit) => {
                i = skip_while(bytes, i, u8::is_ascii_digit);
                Some("?")
            }
            b'$' => match dollar_tag_end(bytes, token_start) {
                Some(end) => {
                    i = end;
                    Some("?")
                }
                None => Some("$"),
            },
            b'?' => {
                i = skip_while(bytes, i, u8::is_ascii_digit);
                Some("?")
            }
            b':' | b'@' if bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') => {
                i = skip_while(bytes, i, |b| b.is_ascii_alphanumeric() || *b == b'_');
                Some("?")
            }
            b'0'..=b'9' => {
                i = skip_while(bytes, i, |b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_');
                Some("?")
            }
            b'"' | b'`' => {
                i = end_of_quoted(bytes, i, c);
                Some(&sql[token_start..i])
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                i = skip_while(bytes, i, |b| b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80);
                Some(&sql[token_start..i])
            }
            _ => Some(&sql[token_start..i]),
        };
        if let Some(token) = token {
            push(&mut out, token, std::mem::take(&mut pending_space));
        }
    }
    collapse_lists(&out)
}

fn push(out: &mut String, token: &str, space: bool) {
    let tight_after = out.ends_with('(') || out.ends_with('.');
    let tight_before = matches!(token, ")" | "," | "." | ";");
    if space && !tight_after && !tight_before {
        out.push(' ');
    } else if !space && !out.is_empty() && !tight_after && !tight_before && needs_space(out, token) {
        // `id=?` and `id = ?` fingerprint alike: operators get spaces.
        out.push(' ');
    }
    out.push_str(token);
}

fn needs_space(out: &str, token: &str) -> bool {
    let last = out.chars().next_back().unwrap_or(' ');
    let first = token.chars().next().unwrap_or(' ');
    let op = |c: char| "=<>!+-*/%|&".contains(c);
    (op(last) && !op(first)) || (op(first) && !op(last)) || (last == ',' && first != ' ')
}

/// `IN (?, ?, ?)` and `VALUES (?, ?), (?, ?)` become `IN (...)` and
/// `VALUES (...)`: the length of a list is a value too. Other parentheses
/// (`pg_sleep(?)`, `coalesce(?, ?)`) stay as they are.
fn collapse_lists(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('(') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let close = from.find(')');
        let list = close.map(|c| &from[1..c]).filter(|inner| inner.split(", ").all(|p| p == "?"));
        let upper = out.to_ascii_uppercase();
        let after_keyword = upper.ends_with(" IN ") || upper.ends_with(" VALUES ") || out.ends_with("(...), ");
        match (list, close) {
            (Some(_), Some(close)) if after_keyword => {
                out.push_str("(...)");
                rest = &from[close + 1..];
            }
            _ => {
                out.push('(');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    while out.contains("(...), (...)") {
        out = out.replace("(...), (...)", "(...)");
    }
    out
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn skip_while(bytes: &[u8], mut i: usize, f: impl Fn(&u8) -> bool) -> usize {
    while i < bytes.len() && f(&bytes[i]) {
        i += 1;
    }
    i
}

/// Past the closing quote; a doubled quote is an escaped one.
fn end_of_quoted(bytes: &[u8], mut i: usize, quote: u8) -> usize {
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if bytes[i] == b'\\' && quote == b'\'' {
            i += 1;
        }
        i += 1;
    }
    bytes.len()
}

/// `$tag$ ... $tag$` (PostgreSQL dollar quoting), from its first `$`.
fn dollar_tag_end(bytes: &[u8], start: usize) -> Option<usize> {
    let tag_end = skip_while(bytes, start + 1, |b| b.is_ascii_alphanumeric() || *b == b'_');
    if bytes.get(tag_end) != Some(&b'$') {
        return None;
    }
    let tag = &bytes[start..=tag_end];
    find(bytes, tag_end + 1, tag).map(|e| e + tag.len())
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn values_and_spacing_do_not_matter() {
        let a = fingerprint("SELECT * FROM users WHERE id = 42 AND name = 'o''hara'");
        let b = fingerprint("SELECT *\n  FROM users   WHERE id=$1 AND name = $2 -- by name");
        assert_eq!(a, "SELECT * FROM users WHERE id = ? AND name = ?");
        assert_eq!(a, b);
        assert_eq!(fingerprint("select x from t where y = ?1 and z = :name"), "select x from t where y = ? and z = ?");
    }

    #[test]
    fn lists_collapse_and_identifiers_stay() {
        assert_eq!(fingerprint("SELECT a FROM t WHERE id IN (1, 2, 3)"), "SELECT a FROM t WHERE id IN (...)");
        assert_eq!(fingerprint("SELECT a FROM t WHERE id IN (7)"), "SELECT a FROM t WHERE id IN (...)");
        assert_eq!(fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')"), "INSERT INTO t (a, b) VALUES (...)");
        assert_eq!(fingerprint(r#"SELECT "user"."id2" FROM "user""#), r#"SELECT "user"."id2" FROM "user""#);
        assert_eq!(fingerprint("SELECT $body$ it's $1 $body$, 1.5e3"), "SELECT ?, ?");
        assert_eq!(fingerprint("/* app */ SELECT pg_sleep(5)"), "SELECT pg_sleep(?)");
    }

    #[test]
    fn long_statements_are_bounded() {
        let sql = format!("SELECT {} FROM t", "col, ".repeat(500));
        assert!(fingerprint(&sql).len() <= super::MAX_LEN + 8);
    }
}
