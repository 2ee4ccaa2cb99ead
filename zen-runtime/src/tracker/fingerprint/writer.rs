//! Writes tokens into a fingerprint: values as `?`, spacing normalised, value
//! lists collapsed, and the text bounded. Past [`MAX_LEN`] bytes the rest
//! is only hashed, so that two long statements that differ late still get
//! two fingerprints.

use super::lexer::Token;

/// The longest fingerprint text kept; a longer statement is cut there and
/// marked with a hash of all of it.
pub const MAX_LEN: usize = 512;

pub(super) struct Writer {
    out: String,
    /// Output reached `MAX_LEN`: tokens are only hashed from here on.
    full: bool,
    hash: u64,
    space: bool,
    /// The last word was `IN` or `VALUES`.
    after_in: bool,
    after_values: bool,
    list: Option<List>,
    /// Right after a collapsed `VALUES (...)`, a `,`: where it was written.
    values_comma: Option<Mark>,
    /// A collapsed `VALUES` list just ended.
    values_ended: bool,
    cut: bool,
}

/// The writer's state before a token, to go back to.
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    full: bool,
    hash: u64,
    space: bool,
}

/// A parenthesised list after `IN` or `VALUES`, written as it comes, which
/// collapses to `(...)` if it closes holding nothing but values, commas and
/// parentheses: the length of a list is a value too.
struct List {
    /// Before its `(` (or before `, (` for a further `VALUES` row).
    mark: Mark,
    depth: u32,
    values: bool,
    /// A further row of `VALUES (...), (...)`: collapsing removes it.
    merge: bool,
}

impl Writer {
    pub(super) fn new(sql_len: usize) -> Self {
        Writer {
            out: String::with_capacity(sql_len.min(MAX_LEN + 16)),
            full: false,
            hash: 0,
            space: false,
            after_in: false,
            after_values: false,
            list: None,
            values_comma: None,
            values_ended: false,
            cut: false,
        }
    }

    /// Adds a token; `false` once nothing more can be added.
    pub(super) fn token(&mut self, token: Token<'_>) -> bool {
        let text = match token {
            Token::Space => {
                self.space = !self.out.is_empty();
                return true;
            }
            Token::Rest => {
                self.write("?");
                self.cut = true;
                return false;
            }
            Token::Value => "?",
            Token::Word(w) | Token::Quoted(w) | Token::Punct(w) => w,
        };
        if self.list.is_none()
            && !self.after_in
            && !self.after_values
            && !self.values_ended
            && self.values_comma.is_none()
        {
            // Most tokens: no list can open or end here.
            self.write(text);
            self.after_in = matches!(token, Token::Word(w) if w.eq_ignore_ascii_case("IN"));
            self.after_values = matches!(token, Token::Word(w) if w.eq_ignore_ascii_case("VALUES"));
            return true;
        }
        if let Some(list) = &mut self.list {
            match text {
                "?" | "," | "+" | "-" => {}
                "(" => list.depth += 1,
                ")" if list.depth > 0 => list.depth -= 1,
                ")" => {
                    self.collapse();
                    return true;
                }
                // More than values (`IN (SELECT ...)`): it stays as written.
                _ => self.list = None,
            }
        }
        let mark = self.mark();
        let comma = self.values_comma.take();
        if std::mem::take(&mut self.values_ended) && text == "," {
            self.values_comma = Some(mark);
        }
        let opens = text == "(" && self.list.is_none() && (self.after_in || self.after_values || comma.is_some());
        let values = self.after_values || comma.is_some();
        let word = |k: &str| matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(k));
        (self.after_in, self.after_values) = (word("IN"), word("VALUES"));
        self.write(text);
        if opens {
            self.list = Some(List { mark: comma.unwrap_or(mark), depth: 0, values, merge: comma.is_some() });
        }
        true
    }

    /// The output is at its bound: only the hash still grows.
    pub(super) fn full(&self) -> bool {
        self.full
    }

    /// How deep the open list of values is, if one is open: with the
    /// output full, its text does not matter, only where it ends.
    pub(super) fn open_list(&self) -> Option<u32> {
        self.list.as_ref().map(|l| l.depth)
    }

    /// The open list turned out to hold more than values: it stays as read.
    pub(super) fn list_broken(&mut self) {
        self.list = None;
    }

    /// Stops reading: a list still open is taken for a list of values.
    pub(super) fn stop(&mut self) {
        if self.list.is_some() {
            self.collapse();
        }
        self.full = true;
    }

    fn mark(&self) -> Mark {
        Mark { len: self.out.len(), full: self.full, hash: self.hash, space: self.space }
    }

    fn restore(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.full = mark.full;
        self.hash = mark.hash;
        self.space = mark.space;
    }

    /// The list closed holding only values: `(...)`, and a further
    /// `VALUES` row disappears into the first.
    fn collapse(&mut self) {
        let Some(list) = self.list.take() else { return };
        self.restore(list.mark);
        if !list.merge {
            self.write("(...)");
        }
        self.values_ended = list.values;
    }

    /// Writes `text` with normalised spacing, and hashes it.
    fn write(&mut self, text: &str) {
        let space = std::mem::take(&mut self.space);
        self.hash = mix(self.hash, text.as_bytes());
        if self.full {
            return;
        }
        let separate = needs_space(&self.out, text, space);
        if self.out.len() + usize::from(separate) + text.len() > MAX_LEN {
            self.full = true;
            return;
        }
        if separate {
            self.out.push(' ');
        }
        self.out.push_str(text);
    }

    pub(super) fn finish(mut self) -> String {
        // A list the statement never closed is taken for a list of values.
        if self.list.is_some() {
            self.collapse();
        }
        if self.cut {
            self.out.push('…');
        } else if self.full {
            use std::fmt::Write as _;
            // The low half of the hash: enough to tell statements apart.
            let _ = write!(self.out, " …#{:08x}", self.hash >> 32);
        }
        self.out
    }
}

/// Adds a token to the hash: the multiply-rotate step of rustc's `FxHasher`
/// per 8 bytes, inlined for the one- and few-byte tokens most are.
#[inline]
fn mix(hash: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    let mut h = hash;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = step(h, u64::from_le_bytes(word));
    }
    let tail = chunks.remainder().iter().fold(0u64, |w, &b| (w << 8) | u64::from(b));
    // The length ends the token, so `ab`,`c` and `a`,`bc` differ.
    step(h, tail ^ ((bytes.len() as u64) << 56))
}

/// Whether a space goes between the output so far and `token`: where the
/// SQL had one, or around operators, so that `id=?` and `id = ?` agree.
fn needs_space(out: &str, token: &str, had_space: bool) -> bool {
    let Some(last) = out.chars().next_back() else { return false };
    if last == '(' || last == '.' || matches!(token, ")" | "," | "." | ";") {
        return false;
    }
    if had_space {
        return true;
    }
    let first = token.chars().next().unwrap_or(' ');
    let op = |c: char| "=<>!+-*/%|&".contains(c);
    (op(last) && !op(first)) || (op(first) && !op(last)) || last == ','
}
