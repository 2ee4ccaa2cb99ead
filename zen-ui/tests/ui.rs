//! Compile-time behaviour of `#[zen]`.
//!
//! `ui/fail` holds zen's own messages, `ui/fail-rustc` the compiler's type
//! errors around the expansion (those change with compiler versions), and
//! `ui/pass` the shapes and compositions that must keep compiling.
//! Regenerate the `.stderr` files after an intended change with
//! `TRYBUILD=overwrite cargo test -p zen-ui`, then review the diff.

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

/// The messages the runtime's rustdoc quotes under a `compile_fail` example
/// (`// error: ...`, continued on the lines below) are the compiler's own,
/// as the `.stderr` files here hold them.
#[test]
fn the_documented_messages_are_the_real_ones() {
    let mut real = String::new();
    for dir in ["tests/ui/fail", "tests/ui/fail-rustc"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "stderr") {
                real.push_str(&std::fs::read_to_string(path).unwrap());
                real.push('\n');
            }
        }
    }
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let real = flat(&real);
    let mut quoted = 0;
    for file in ["zen-runtime/src/lib.rs", "zen-runtime/src/http/mod.rs"] {
        let source = std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut lines =
            source.lines().map(|l| l.trim_start().trim_start_matches("///").trim_start_matches("//!").trim());
        while let Some(line) = lines.next() {
            let Some(first) = line.strip_prefix("// error") else { continue };
            let mut message = first.to_owned();
            for next in lines.by_ref() {
                match next.strip_prefix("//") {
                    Some(rest) if rest.starts_with("  ") => message.push_str(rest),
                    _ => break,
                }
            }
            assert!(
                real.contains(&flat(&format!("error{message}"))),
                "{file} quotes a message no ui case gives: error{message}"
            );
            quoted += 1;
        }
    }
    assert_eq!(quoted, 7, "every quoted message was found and checked");
}
