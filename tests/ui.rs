//! Compile-time behaviour of `#[zen]`.
//!
//! `ui/fail` holds zen's own messages, `ui/fail-rustc` the compiler's type
//! errors around the expansion (those change with compiler versions), and
//! `ui/pass` the shapes and compositions that must keep compiling.
//! Regenerate the `.stderr` files after an intended change with
//! `TRYBUILD=overwrite cargo test --test ui`, then review the diff.

#[test]
fn ui() {
    // The pass cases are programs of their own, in a crate of trybuild's:
    // they are not this package's tests and have no place in its lock.
    // SAFETY: the only test of this binary, before trybuild starts a thread
    // or a process; nothing else reads the environment meanwhile.
    unsafe { std::env::remove_var("ZEN_LOCK") };
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
    t.compile_fail("tests/ui/fail-rustc/*.rs");
}
