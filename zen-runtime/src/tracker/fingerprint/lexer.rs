//! Splits SQL into the tokens a fingerprint is made of, by the rules of one
//! dialect, in one pass: every byte is looked at a bounded number of times,
//! whatever the input (unterminated quotes, comments and dollar tags swallow
//! the rest of the statement instead of being searched for again).
//!
//! Where the server's settings decide how a literal ends (a backslash in a
//! string: an escape under MySQL's default mode or PostgreSQL's
//! `standard_conforming_strings = off`, a plain character otherwise), both
//! readings are tried; if they disagree, the lexer gives up on the rest of
//! the statement ([`Token::Rest`]) rather than risk showing part of a value.

use super::Dialect;

/// One token, as the fingerprint sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// Whitespace or a comment.
    Space,
    /// A literal or a placeholder: printed as `?`.
    Value,
    /// An identifier or keyword, as written.
    Word(&'a str),
    /// A quoted identifier, as written.
    Quoted(&'a str),
    /// An operator or punctuation.
    Punct(&'a str),
    /// What follows cannot be told apart from a value: drop all of it.
    Rest,
}

/// Where [`Lexer::skip_values`] stopped.
pub(super) enum Skipped<'a> {
    /// At the `)` that closes the list.
    Closed,
    /// At a token that is no value.
    Other(Token<'a>),
    /// At the end of the statement.
    End,
}

/// How a quoted literal ends.
#[derive(Clone, Copy)]
enum Escapes {
    /// A doubled quote stands for one; a backslash is a plain character.
    Doubled,
    /// A backslash escapes the next byte; a doubled quote stands for one.
    Backslash,
    /// Either, depending on the server's settings.
    Unsure,
}

pub(super) struct Lexer<'a> {
    sql: &'a str,
    pos: usize,
    dialect: Dialect,
    /// The last token other than whitespace was a `.`.
    after_dot: bool,
    /// The last token other than whitespace was a keyword after which only a
    /// table name can come (`FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE`).
    after_table_keyword: bool,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(sql: &'a str, dialect: Dialect) -> Self {
        Lexer { sql, pos: 0, dialect, after_dot: false, after_table_keyword: false }
    }

    fn bytes(&self) -> &'a [u8] {
        self.sql.as_bytes()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// Where the next token starts.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn next_token(&mut self) -> Option<Token<'a>> {
        let token = self.lex()?;
        if token != Token::Space {
            self.after_dot = token == Token::Punct(".");
            // Only SQLite's reading of `"x"` needs to know.
            self.after_table_keyword = self.dialect == Dialect::Sqlite
                && matches!(token, Token::Word(w) if w.len() >= 4 && is_table_keyword(w));
        }
        Some(token)
    }

    fn lex(&mut self) -> Option<Token<'a>> {
        let start = self.pos;
        let b = self.at(start)?;
        self.pos += 1;
        let token = match CLASS[usize::from(b)] {
            SPACE => {
                self.skip_while(|b| CLASS[usize::from(b)] == SPACE);
                Token::Space
            }
            IDENT => self.word(start),
            DIGIT => self.number(),
            PLAIN => Token::Punct(&self.sql[start..self.pos]),
            _ => self.special(start, b),
        };
        Some(token)
    }

    /// The bytes whose meaning depends on what follows or on the dialect.
    fn special(&mut self, start: usize, b: u8) -> Token<'a> {
        let next = self.at(start + 1);
        match b {
            b'-' if next == Some(b'-') => self.dashes(),
            b'#' => self.hash(),
            b'/' if next == Some(b'*') => self.block_comment(),
            b'[' => self.bracket(start),
            b'\'' => self.literal(b'\'', self.string_escapes()),
            b'"' => self.double_quoted(),
            b'`' => self.backticked(start),
            b'$' => self.dollar(start),
            b'?' => {
                self.skip_while(|b| b.is_ascii_digit());
                Token::Value
            }
            b':' if next == Some(b':') => {
                self.pos += 1;
                Token::Punct("::")
            }
            b':' | b'@' if next.is_some_and(is_ident_start) => {
                self.skip_while(is_ident_part);
                Token::Value
            }
            b'.' if next.is_some_and(|b| b.is_ascii_digit()) && !self.after_word_like(start) => self.number(),
            _ => Token::Punct(&self.sql[start..self.pos]),
        }
    }

    /// Reads on through a list of values (`IN (1, 2, ...)`, `VALUES (..), (..)`)
    /// whose text no longer matters, only where it ends: a tight loop over
    /// numbers, commas and spaces, the lexer for anything else. `depth` is
    /// how many parentheses deep in the list the reading starts.
    pub(super) fn skip_values(&mut self, mut depth: u32) -> Skipped<'a> {
        loop {
            let Some(b) = self.at(self.pos) else { return Skipped::End };
            match CLASS[usize::from(b)] {
                SPACE => self.pos += 1,
                DIGIT => {
                    self.pos += 1;
                    self.number();
                }
                _ if b == b',' => self.pos += 1,
                _ => match self.lex() {
                    None => return Skipped::End,
                    Some(Token::Space | Token::Value | Token::Punct("," | "+" | "-")) => {}
                    Some(Token::Punct("(")) => depth += 1,
                    Some(Token::Punct(")")) if depth > 0 => depth -= 1,
                    Some(Token::Punct(")")) => return Skipped::Closed,
                    Some(other) => return Skipped::Other(other),
                },
            }
        }
    }

    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        let rest = &self.bytes()[self.pos..];
        self.pos += rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
    }

    /// `true` when the byte before `at` ends an identifier or a group: a `.`
    /// there is a qualifier (`t.5` does not start a number).
    fn after_word_like(&self, at: usize) -> bool {
        at > 0 && matches!(self.bytes()[at - 1], b if is_ident_part(b) || b == b')' || b == b'"' || b == b'`')
    }

    /// `--`: a comment to the end of the line (PostgreSQL also ends it at
    /// `\r`); in MySQL only when whitespace follows.
    fn dashes(&mut self) -> Token<'a> {
        let after = self.at(self.pos + 1);
        let spaced = after.is_none_or(|b| b.is_ascii_whitespace());
        if self.glued() {
            return self.rest();
        }
        match self.dialect {
            Dialect::Postgres => self.comment_to(self.line_end(true)),
            Dialect::Sqlite => self.comment_to(self.line_end(false)),
            Dialect::MySql if spaced => self.comment_to(self.line_end(false)),
            Dialect::MySql => Token::Punct("-"),
            // A comment everywhere but in MySQL when unspaced, where it is
            // code: only safe to skip if nothing in it could start a literal.
            Dialect::Generic => {
                let end = self.line_end(false);
                if end != self.line_end(true) || (!spaced && hostile(&self.bytes()[self.pos..end])) {
                    return self.rest();
                }
                self.comment_to(end)
            }
        }
    }

    /// `#`: a comment in MySQL, an operator elsewhere.
    fn hash(&mut self) -> Token<'a> {
        match self.dialect {
            Dialect::MySql => self.comment_to(self.line_end(false)),
            Dialect::Postgres | Dialect::Sqlite => Token::Punct("#"),
            Dialect::Generic => {
                let end = self.line_end(false);
                if end != self.line_end(true) || hostile(&self.bytes()[self.pos..end]) {
                    return self.rest();
                }
                self.comment_to(end)
            }
        }
    }

    /// The comment opener just read (`--`, `/*`) follows an operator
    /// character: PostgreSQL ends the operator there, other readers take
    /// part of it for the operator and the rest for code, and no one place
    /// where the comment ends is safe.
    fn glued(&self) -> bool {
        let start = self.pos - 1;
        start > 0 && b"#@!~^&|<>=+-*/%?".contains(&self.bytes()[start - 1])
    }

    /// Past the end of the line the comment at `pos` is on.
    fn line_end(&self, at_cr: bool) -> usize {
        let rest = &self.bytes()[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n' || (at_cr && b == b'\r'));
        end.map_or(self.sql.len(), |e| self.pos + e + 1)
    }

    fn comment_to(&mut self, end: usize) -> Token<'a> {
        self.pos = end;
        Token::Space
    }

    /// `/* ... */`: nested in PostgreSQL, not in SQLite or MySQL; for an
    /// unknown backend, only where both readings end it at the same place.
    /// MySQL runs the inside of `/*! ... */` as code: skipped only if nothing
    /// in it could start a literal. Unterminated, it hides the rest.
    fn block_comment(&mut self) -> Token<'a> {
        let body = self.pos + 1;
        let nested = comment_end(self.bytes(), body, true);
        let flat = comment_end(self.bytes(), body, false);
        let end = match self.dialect {
            Dialect::Postgres => nested,
            Dialect::Sqlite | Dialect::MySql => flat,
            Dialect::Generic if nested == flat => flat,
            Dialect::Generic => return self.rest(),
        };
        let executable = self.at(body) == Some(b'!') && matches!(self.dialect, Dialect::MySql | Dialect::Generic);
        if self.glued() || (executable && hostile(&self.bytes()[body..end])) {
            return self.rest();
        }
        self.comment_to(end)
    }

    /// `[name]`: an identifier in SQLite; elsewhere a bracket, or, for an
    /// unknown backend, either.
    fn bracket(&mut self, start: usize) -> Token<'a> {
        let close = self.bytes()[self.pos..].iter().position(|&b| b == b']').map(|e| self.pos + e + 1);
        match (self.dialect, close) {
            (Dialect::Sqlite, Some(end)) => {
                self.pos = end;
                Token::Quoted(&self.sql[start..end])
            }
            (Dialect::Sqlite, None) => self.rest(),
            (Dialect::Generic, _) if hostile(&self.bytes()[self.pos..close.unwrap_or(self.sql.len())]) => self.rest(),
            _ => Token::Punct("["),
        }
    }

    fn string_escapes(&self) -> Escapes {
        match self.dialect {
            // SQLite never treats a backslash as an escape.
            Dialect::Sqlite => Escapes::Doubled,
            // PostgreSQL does unless `standard_conforming_strings` is on (the
            // default); MySQL does unless `NO_BACKSLASH_ESCAPES`.
            Dialect::Postgres | Dialect::MySql | Dialect::Generic => Escapes::Unsure,
        }
    }

    fn double_quoted(&mut self) -> Token<'a> {
        let start = self.pos - 1;
        match self.dialect {
            Dialect::Postgres => self.quoted_identifier(start, b'"'),
            // SQLite reads `"x"` as a string when no column is named x. After
            // a `.`, before one, or where only a table name can come, it is
            // an identifier; anywhere else it may be a value.
            Dialect::Sqlite => {
                let context = self.after_dot || self.after_table_keyword;
                match self.quoted_identifier(start, b'"') {
                    Token::Quoted(text) if context || self.at(self.pos) == Some(b'.') => Token::Quoted(text),
                    Token::Quoted(_) => Token::Value,
                    other => other,
                }
            }
            // A string in MySQL (unless `ANSI_QUOTES`), and possibly one elsewhere.
            Dialect::MySql | Dialect::Generic => self.literal(b'"', Escapes::Unsure),
        }
    }

    /// `` `name` ``: an identifier in MySQL and SQLite; nothing in PostgreSQL,
    /// which reads what follows as it comes; either, so a value, elsewhere.
    fn backticked(&mut self, start: usize) -> Token<'a> {
        match self.dialect {
            Dialect::MySql | Dialect::Sqlite => self.quoted_identifier(start, b'`'),
            Dialect::Postgres => Token::Punct("`"),
            Dialect::Generic => match end_of(self.bytes(), self.pos, b'`', false) {
                Some(end) if !hostile(&self.bytes()[self.pos..end - 1]) => {
                    self.pos = end;
                    Token::Value
                }
                _ => self.rest(),
            },
        }
    }

    /// `"name"` or `` `name` ``, a doubled quote standing for one.
    fn quoted_identifier(&mut self, start: usize, quote: u8) -> Token<'a> {
        match end_of(self.bytes(), self.pos, quote, false) {
            // `""` is no identifier: readers disagree on what it starts.
            Some(end) if end == self.pos + 1 => self.rest(),
            Some(end) => {
                self.pos = end;
                Token::Quoted(&self.sql[start..end])
            }
            None => self.rest(),
        }
    }

    /// A quoted literal whose opening quote was just read.
    fn literal(&mut self, quote: u8, escapes: Escapes) -> Token<'a> {
        let bytes = self.bytes();
        let end = match escapes {
            Escapes::Doubled => end_of(bytes, self.pos, quote, false),
            Escapes::Backslash => end_of(bytes, self.pos, quote, true),
            Escapes::Unsure => match end_without_backslash(bytes, self.pos, quote) {
                // Without a backslash in it, both readings end it at the same
                // quote: one scan.
                Ok(end) => end,
                // Both readings cover the literal up to where they part, so
                // the work stays linear: they agree, or the lexer stops.
                Err(()) => {
                    let plain = end_of(bytes, self.pos, quote, false);
                    let escaped = end_of(bytes, self.pos, quote, true);
                    if plain == escaped { plain } else { None }
                }
            },
        };
        match end {
            Some(end) => {
                self.pos = end;
                Token::Value
            }
            None => self.rest(),
        }
    }

    /// `$1`, `$name` (SQLite), or a PostgreSQL dollar-quoted string.
    fn dollar(&mut self, start: usize) -> Token<'a> {
        let next = self.at(self.pos);
        if next.is_some_and(|b| b.is_ascii_digit()) {
            self.skip_while(|b| b.is_ascii_digit());
            return Token::Value;
        }
        match self.dialect {
            Dialect::Sqlite | Dialect::MySql if next.is_some_and(is_ident_start) => {
                self.skip_while(is_ident_part);
                Token::Value
            }
            Dialect::Postgres | Dialect::Generic => {
                let tag_end = start + 1 + self.bytes()[start + 1..].iter().position(|&b| !is_tag_part(b)).unwrap_or(0);
                let tag_starts_right = next.is_some_and(|b| b == b'$' || is_ident_start(b) && !b.is_ascii_digit());
                if !tag_starts_right || self.at(tag_end) != Some(b'$') {
                    return Token::Punct("$");
                }
                let tag = &self.sql[start..=tag_end];
                // `str::find` is linear in both lengths (two-way search).
                match self.sql[tag_end + 1..].find(tag) {
                    // Elsewhere the body is code: skipped only if nothing in
                    // it could start a literal.
                    Some(at)
                        if self.dialect == Dialect::Generic
                            && hostile(&self.bytes()[tag_end + 1..tag_end + 1 + at]) =>
                    {
                        self.rest()
                    }
                    Some(at) => {
                        self.pos = tag_end + 1 + at + tag.len();
                        Token::Value
                    }
                    None => self.rest(),
                }
            }
            _ => Token::Punct("$"),
        }
    }

    fn number(&mut self) -> Token<'a> {
        let bytes = self.bytes();
        let hex = bytes[self.pos - 1] == b'0' && matches!(self.at(self.pos), Some(b'x' | b'X'));
        while let Some(b) = self.at(self.pos) {
            let exponent_sign = matches!(b, b'+' | b'-') && !hex && matches!(bytes[self.pos - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || exponent_sign {
                self.pos += 1;
            } else {
                break;
            }
        }
        Token::Value
    }

    fn word(&mut self, start: usize) -> Token<'a> {
        self.skip_while(is_ident_part);
        let word = &self.sql[start..self.pos];
        if word.len() > 1 {
            return Token::Word(word);
        }
        let prefix = |p: &str| word.eq_ignore_ascii_case(p);
        // Where prefixes may change how a string ends, an unknown backend is
        // read both ways.
        let (escaped, unicode) = match self.dialect {
            Dialect::Postgres => (Some(Escapes::Backslash), Some(Escapes::Doubled)),
            Dialect::Generic => (Some(Escapes::Unsure), Some(Escapes::Unsure)),
            Dialect::Sqlite | Dialect::MySql => (None, None),
        };
        let next = self.at(self.pos);
        // `E'...'`: C-style escapes, whatever the settings.
        if prefix("e")
            && next == Some(b'\'')
            && let Some(escapes) = escaped
        {
            self.pos += 1;
            return self.literal(b'\'', escapes);
        }
        // `U&'...'`: a backslash starts a Unicode escape, never a quote.
        if prefix("u")
            && next == Some(b'&')
            && self.at(self.pos + 1) == Some(b'\'')
            && let Some(escapes) = unicode
        {
            self.pos += 2;
            return self.literal(b'\'', escapes);
        }
        // `N'..'`, `B'..'`, `X'..'`: the prefix belongs to the value. Some
        // readers take a backslash in them for an escape, whatever the
        // dialect, so both readings must agree.
        if next == Some(b'\'') && (prefix("n") || prefix("b") || prefix("x")) {
            self.pos += 1;
            return self.literal(b'\'', Escapes::Unsure);
        }
        Token::Word(word)
    }

    fn rest(&mut self) -> Token<'a> {
        self.pos = self.sql.len();
        Token::Rest
    }
}

/// Past the `*/` that ends a comment whose body starts at `from`, nested
/// or not; the end of the text if none does.
fn comment_end(bytes: &[u8], from: usize, nested: bool) -> usize {
    let mut i = from;
    let mut depth = 1u64;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') if nested => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// `true` when some dialect's reading of `text` as code could start a
/// literal or a comment in it.
fn hostile(text: &[u8]) -> bool {
    text.iter().any(|b| matches!(b, b'\'' | b'"' | b'`' | b'$' | b'#' | b'[' | b'\r'))
        || text.windows(2).any(|w| w == b"--" || w == b"/*")
}

/// Past the closing `quote` of a literal that holds no backslash (`Ok(None)`
/// if it never closes); `Err` at the first backslash, where readings may part.
fn end_without_backslash(bytes: &[u8], from: usize, quote: u8) -> Result<Option<usize>, ()> {
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            return Err(());
        }
        if b == quote {
            if bytes.get(i + 1) != Some(&quote) {
                return Ok(Some(i + 1));
            }
            i += 1;
        }
        i += 1;
    }
    Ok(None)
}

/// Past the closing `quote` of a literal whose body starts at `from`; `None`
/// when it never closes.
fn end_of(bytes: &[u8], from: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = from;
    loop {
        let rest = bytes.get(i..)?;
        let at = i + rest.iter().position(|&b| b == quote || (backslash && b == b'\\'))?;
        // A backslash escapes the next byte; a doubled quote is one quote.
        if bytes[at] == b'\\' || bytes.get(at + 1) == Some(&quote) {
            i = at + 2;
        } else {
            return Some(at + 1);
        }
    }
}

/// What a byte starts: whitespace, an identifier, a number, a one-byte
/// punctuation, or something that needs a closer look.
const SPECIAL: u8 = 0;
const SPACE: u8 = 1;
const IDENT: u8 = 2;
const DIGIT: u8 = 3;
const PLAIN: u8 = 4;

static CLASS: [u8; 256] = {
    let mut class = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        class[b] = if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            SPACE
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            IDENT
        } else if c.is_ascii_digit() {
            DIGIT
        } else if matches!(c, b'-' | b'#' | b'/' | b'[' | b'\'' | b'"' | b'`' | b'$' | b'?' | b':' | b'@' | b'.') {
            SPECIAL
        } else {
            PLAIN
        };
        b += 1;
    }
    class
};

fn is_ident_start(b: u8) -> bool {
    CLASS[usize::from(b)] == IDENT
}

fn is_ident_part(b: u8) -> bool {
    matches!(CLASS[usize::from(b)], IDENT | DIGIT) || b == b'$'
}

fn is_tag_part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_table_keyword(word: &str) -> bool {
    ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].iter().any(|k| word.eq_ignore_ascii_case(k))
}

#[cfg(test)]
mod tests {
    use super::{Dialect, Lexer, Token};

    fn tokens(sql: &str, dialect: Dialect) -> Vec<Token<'_>> {
        let mut lexer = Lexer::new(sql, dialect);
        std::iter::from_fn(|| lexer.next_token()).filter(|t| *t != Token::Space).collect()
    }

    #[test]
    fn a_backslash_that_changes_where_a_string_ends_drops_the_rest() {
        let sql = r"SELECT 'C:\', 'secret'";
        assert_eq!(
            tokens(sql, Dialect::Sqlite),
            [Token::Word("SELECT"), Token::Value, Token::Punct(","), Token::Value]
        );
        for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Generic] {
            assert_eq!(tokens(sql, dialect), [Token::Word("SELECT"), Token::Rest], "{dialect:?}");
        }
        // Both readings agree: nothing to drop.
        assert_eq!(tokens(r"SELECT 'a\\b', x", Dialect::Postgres).len(), 4);
    }

    #[test]
    fn dollar_quotes_and_placeholders() {
        assert_eq!(tokens("$1 $a$ x $a$ $$y$$", Dialect::Postgres), [Token::Value, Token::Value, Token::Value]);
        assert_eq!(tokens("$tag$ never closed", Dialect::Postgres), [Token::Rest]);
        assert_eq!(tokens("$name", Dialect::Sqlite), [Token::Value]);
        assert_eq!(tokens("a::text", Dialect::Postgres), [Token::Word("a"), Token::Punct("::"), Token::Word("text")]);
    }
}
