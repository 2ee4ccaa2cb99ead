//! Compile-time behaviour of `#[zen]`.
//!
//! `ui/fail` holds zen's own messages, `ui/fail-rustc` the compiler's type
//! errors around the expansion (those change with compiler versions), and
//! `ui/pass` the shapes and compositions that must keep compiling.
//! Regenerate the `.stderr` files after an intended change with
//! `TRYBUILD=overwrite cargo test --test ui`, then review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
    t.compile_fail("tests/ui/fail-rustc/*.rs");
}
