//! Fingerprinting hostile statements: 1 MiB each, built to make a reader
//! that searches again for every unmatched delimiter take quadratic time.
//! Every one must take time linear in its length.
//!
//! `cargo bench --bench fingerprint`

use zen_runtime::fingerprint::{Dialect, fingerprint};

fn main() {
    divan::main();
}

const MIB: usize = 1 << 20;

/// Repeats `piece` (numbered by `{}`) until the text is 1 MiB.
fn repeat(head: &str, piece: impl Fn(usize) -> String) -> String {
    repeat_to(MIB, head, piece)
}

fn repeat_to(len: usize, head: &str, piece: impl Fn(usize) -> String) -> String {
    let mut sql = String::with_capacity(len + 64);
    sql.push_str(head);
    let mut i = 0;
    while sql.len() < len {
        sql.push_str(&piece(i));
        i += 1;
    }
    sql.truncate(len);
    sql
}

fn input(name: &str) -> String {
    match name {
        // Every tag opens and none closes: the old reader searched the rest
        // of the statement again for each one.
        "unmatched_dollar_tags" => repeat("SELECT ", |i| format!("$t{i}$ x, ").repeat(1) + &"y ".repeat(2_500)),
        "unterminated_quote" => repeat("SELECT 'never closed ", |_| "a''b \\ ".to_owned()),
        "unterminated_comment" => repeat("SELECT 1 /* never closed ", |_| "/* nested ".to_owned()),
        "deep_parentheses" => repeat("SELECT ", |_| "(".to_owned()),
        "long_in_list" => repeat("SELECT a FROM t WHERE id IN (", |i| format!("{i}, ")),
        "many_backslash_strings" => repeat("SELECT ", |_| r"'a\\b', ".to_owned()),
        "ordinary_sql" => repeat("", |i| format!("SELECT a, b FROM t{i} WHERE x = {i} AND y = 'v{i}'; ")),
        other => panic!("no input {other}"),
    }
}

const INPUTS: &[&str] = &[
    "unmatched_dollar_tags",
    "unterminated_quote",
    "unterminated_comment",
    "deep_parentheses",
    "long_in_list",
    "many_backslash_strings",
    "ordinary_sql",
];

#[divan::bench(args = INPUTS, sample_count = 30)]
fn postgres_1mib(bencher: divan::Bencher<'_, '_>, name: &str) {
    let sql = input(name);
    bencher
        .counter(divan::counter::BytesCount::of_str(&sql))
        .bench(|| fingerprint(divan::black_box(&sql), Dialect::Postgres));
}

#[divan::bench(args = INPUTS, sample_count = 30)]
fn generic_1mib(bencher: divan::Bencher<'_, '_>, name: &str) {
    let sql = input(name);
    bencher
        .counter(divan::counter::BytesCount::of_str(&sql))
        .bench(|| fingerprint(divan::black_box(&sql), Dialect::Generic));
}

/// Linear: the time per byte of a list of strings read to its end stays
/// the same from 64 KiB to 4 MiB.
#[divan::bench(args = [64 * 1024, 256 * 1024, MIB, 4 * MIB], sample_count = 30)]
fn in_list_of_strings_by_size(bencher: divan::Bencher<'_, '_>, len: usize) {
    let mut sql = repeat_to(len, "SELECT a FROM t WHERE name IN (", |i| format!("'name {i}', "));
    sql.push(')');
    bencher
        .counter(divan::counter::BytesCount::of_str(&sql))
        .bench(|| fingerprint(divan::black_box(&sql), Dialect::Postgres));
}
