//! `#[zen]` under a renamed dependency, and in a crate that does not
//! depend on the runtime: real crates, checked by cargo (their manifests are
//! what the attribute reads).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a crate with `dependencies` and `main_rs` under the target
/// directory and runs `cargo check` on it, offline; returns success and
/// what cargo printed.
fn check(name: &str, dependencies: &str, main_rs: &str) -> (bool, String) {
    let dir = root().join("target").join("zen-crates").join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n{dependencies}\n\n[workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), main_rs).unwrap();
    // The workspace's lock file: the same versions, nothing to resolve.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["check", "--offline", "--quiet", "--message-format=short"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", root().join("target").join("zen-crates").join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn path(of: &Path) -> String {
    of.display().to_string().replace('\\', "/")
}

#[test]
fn a_renamed_dependency_needs_no_crate_key_and_a_missing_one_is_named() {
    let runtime = path(&root().join("zen-runtime"));
    let macros = path(&root().join("zen-macros"));
    let (ok, stderr) = check(
        "renamed_runtime",
        &format!(
            "zr = {{ package = \"zen-runtime\", path = \"{runtime}\" }}\ntokio = {{ version = \"1\", features = [\"rt\", \"macros\"] }}"
        ),
        "use zr::zen;\n\n#[zen(max_queries = 5)]\nasync fn handler() -> u32 { 1 }\n\n#[tokio::main(flavor = \"current_thread\")]\nasync fn main() {\n    assert_eq!(handler().await, 1);\n}\n",
    );
    assert!(ok, "a renamed dependency compiles as is:\n{stderr}");

    let (ok, stderr) = check(
        "no_runtime",
        &format!("zen-macros = {{ path = \"{macros}\" }}"),
        "#[zen_macros::zen]\nasync fn handler() {}\n\nfn main() {}\n",
    );
    assert!(!ok);
    assert!(stderr.contains("this crate's Cargo.toml does not depend on it"), "{stderr}");
    assert!(
        stderr.contains("crate = \\\"that_crate::zen_runtime\\\"")
            || stderr.contains("crate = \"that_crate::zen_runtime\""),
        "{stderr}"
    );
}
