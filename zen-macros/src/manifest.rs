//! Which name the crate being compiled gives the runtime. A dependency
//! renamed in Cargo.toml (`zr = { package = "zen-runtime", .. }`, directly or
//! through `[workspace.dependencies]`) is found there, so `#[zen]` works
//! under it without `crate = "zr"`; a crate that does not depend on the
//! runtime at all is told what to add. Read once per crate, by hand: the
//! macro crate depends on nothing but syn, quote and proc-macro2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Where the runtime is, as this crate's manifest says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// `::zen_runtime` (also when the manifest cannot be read).
    Default,
    /// A dependency renamed to this crate name.
    Renamed(String),
    /// No dependency on `zen-runtime` at all.
    Missing,
}

/// The runtime's place for the crate being compiled, by its manifest.
pub(crate) fn runtime() -> Runtime {
    static KNOWN: Mutex<Option<HashMap<String, Runtime>>> = Mutex::new(None);
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else { return Runtime::Default };
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    known.get_or_insert_default().entry(dir.clone()).or_insert_with(|| find(Path::new(&dir))).clone()
}

fn find(dir: &Path) -> Runtime {
    let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { return Runtime::Default };
    let workspace = workspace_root(dir).and_then(|root| std::fs::read_to_string(root.join("Cargo.toml")).ok());
    decide(&manifest, workspace.as_deref())
}

fn workspace_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
}

/// What a manifest's dependency tables say of the runtime.
#[derive(Default, Debug)]
struct Found {
    package: Option<String>,
    direct: bool,
    renamed: Option<String>,
    /// Dependencies taken from `[workspace.dependencies]`, by key.
    inherited: Vec<String>,
    /// `[workspace.dependencies]` entries: key and package.
    workspace: Vec<(String, Option<String>)>,
}

const RUNTIME: &str = "zen-runtime";

fn is_runtime(name: &str) -> bool {
    name == RUNTIME || name == "zen_runtime"
}

pub(crate) fn decide(manifest: &str, workspace: Option<&str>) -> Runtime {
    let found = scan(manifest);
    if found.package.as_deref().is_some_and(is_runtime) || found.direct {
        return Runtime::Default;
    }
    if let Some(name) = found.renamed {
        return Runtime::Renamed(name.replace('-', "_"));
    }
    let root = workspace.map(scan).unwrap_or_default();
    for key in &found.inherited {
        if is_runtime(key) {
            return Runtime::Default;
        }
        let renamed = root.workspace.iter().any(|(k, package)| k == key && package.as_deref().is_some_and(is_runtime));
        if renamed {
            return Runtime::Renamed(key.replace('-', "_"));
        }
    }
    Runtime::Missing
}

fn scan(manifest: &str) -> Found {
    let mut found = Found::default();
    let mut section = String::new();
    // A `[dependencies.name]` table: its name, and whether it is the runtime.
    let mut table: Option<String> = None;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim().to_owned();
            table = dependency_table(&section).map(str::to_owned);
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (unquote(key.trim()), value.trim());
        if section == "package" && key == "name" {
            found.package = Some(unquote(value).to_owned());
        }
        if let Some(name) = &table {
            if key == "package" && is_runtime(unquote(value)) {
                found.renamed = Some(name.clone());
            } else if key == "workspace" && value == "true" {
                found.inherited.push(name.clone());
            } else if key == "path" || key == "version" || key == "git" {
                found.direct |= is_runtime(name);
            }
            continue;
        }
        let in_workspace = section == "workspace.dependencies";
        if !(in_workspace || dependency_section(&section)) {
            continue;
        }
        let (key, dotted) = key.split_once('.').map_or((key, None), |(k, rest)| (unquote(k), Some(rest)));
        let package = package_of(value);
        if in_workspace {
            found.workspace.push((key.to_owned(), package));
        } else if package.as_deref().is_some_and(is_runtime) {
            found.renamed = Some(key.to_owned());
        } else if dotted == Some("workspace") || value.replace(' ', "").contains("workspace=true") {
            found.inherited.push(key.to_owned());
        } else if is_runtime(key) && package.is_none() {
            found.direct = true;
        }
    }
    found
}

/// `dependencies`, `dev-dependencies`, `target.'cfg(..)'.dependencies`, ...
fn dependency_section(section: &str) -> bool {
    section.ends_with("dependencies") && !section.starts_with("workspace")
}

/// The name of a `[dependencies.name]` table.
fn dependency_table(section: &str) -> Option<&str> {
    ["dependencies.", "dev-dependencies.", "build-dependencies."].iter().find_map(|kind| {
        let at = section.find(kind)?;
        let name = &section[at + kind.len()..];
        (!section.starts_with("workspace")).then(|| unquote(name))
    })
}

/// The `package = ".."` of an inline table.
fn package_of(value: &str) -> Option<String> {
    let at = value.find("package")?;
    let rest = value[at + "package".len()..].trim_start().strip_prefix('=')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

fn unquote(text: &str) -> &str {
    text.trim().trim_matches('"').trim_matches('\'')
}

#[cfg(test)]
mod tests {
    use super::{Runtime, decide};

    #[test]
    fn finds_the_runtime_under_its_name_or_another() {
        let direct =
            "[package]\nname = \"app\"\n[dependencies]\nzen-runtime = { version = \"0.1\", features = [\"axum\"] }\n";
        assert_eq!(decide(direct, None), Runtime::Default);
        let dev = "[package]\nname = \"app\"\n[dev-dependencies]\nzen-runtime = \"0.1\"\n";
        assert_eq!(decide(dev, None), Runtime::Default);
        let renamed =
            "[package]\nname = \"app\"\n[dependencies]\nzr = { package = \"zen-runtime\", version = \"0.1\" }\n";
        assert_eq!(decide(renamed, None), Runtime::Renamed("zr".into()));
        let table = "[package]\nname = \"app\"\n[dependencies.budgets]\npackage = \"zen-runtime\"\nversion = \"0.1\"\n";
        assert_eq!(decide(table, None), Runtime::Renamed("budgets".into()));
        let target = "[target.'cfg(unix)'.dependencies]\nmy-zen = { package = \"zen-runtime\", path = \"../z\" }\n";
        assert_eq!(decide(target, None), Runtime::Renamed("my_zen".into()));
        let inherited = "[package]\nname = \"app\"\n[dependencies]\nzr = { workspace = true }\n";
        let root = "[workspace]\nmembers = [\"app\"]\n[workspace.dependencies]\nzr = { package = \"zen-runtime\", version = \"0.1\" }\n";
        assert_eq!(decide(inherited, Some(root)), Runtime::Renamed("zr".into()));
        let inherited_plain = "[dependencies]\nzen-runtime.workspace = true\n";
        assert_eq!(decide(inherited_plain, Some("[workspace]\n")), Runtime::Default);
        let itself = "[package]\nname = \"zen-runtime\"\n[dependencies]\ntokio = \"1\"\n";
        assert_eq!(decide(itself, None), Runtime::Default);
        let missing = "[package]\nname = \"app\"\n[dependencies]\nmy-framework = \"1\" # re-exports zen-runtime\n";
        assert_eq!(decide(missing, None), Runtime::Missing);
    }
}
