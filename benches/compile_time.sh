#!/usr/bin/env bash
# Compile time of `#[zen]`: a crate of 50 handlers, each running three sqlx
# queries, built with and without the attribute. Dependencies are built
# first; each variant's own crate is then rebuilt ROUNDS times and the CPU
# time (user + system) of those rebuilds summed.
#
#   bash benches/compile_time.sh [ZEN_RUNTIME_DIR]   # default: this checkout
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runtime="${1:-$root/zen-runtime}"
work="$root/target/zen-compile-time/$(echo "$runtime" | md5sum | cut -c1-8)"
rounds="${ROUNDS:-5}"
mkdir -p "$work"

handlers() {
  local attribute="$1"
  for i in $(seq 1 50); do
    cat <<RS
${attribute}
pub async fn handler_$i(pool: &SqlitePool, id: i64) -> Result<String, sqlx::Error> {
    let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = ?").bind(id).fetch_one(pool).await?;
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, title FROM articles WHERE author_id = ?").bind(id).fetch_all(pool).await?;
    sqlx::query("UPDATE users SET seen = seen + 1 WHERE id = ?").bind(id).execute(pool).await?;
    Ok(format!("{name}: {}", rows.len()))
}
RS
  done
}

make_crate() {
  local name="$1" attribute="$2"
  local dir="$work/$name"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
zen-runtime = { path = "$runtime", features = ["sqlite"] }
sqlx = { version = "0.9", default-features = false, features = ["runtime-tokio", "sqlite"] }

[workspace]
TOML
  cp "$root/Cargo.lock" "$dir/Cargo.lock"
  { echo "use zen_runtime::db::SqlitePool;"; echo "#[allow(unused_imports)] use zen_runtime::zen;"; handlers "$attribute"; } > "$dir/src/lib.rs"
}

make_crate plain ""
make_crate annotated "#[zen(max_queries = 5, max_db_ms = 50, timeout_ms = 200)]"

cpu() {
  local dir="$work/$1" total=0
  (cd "$dir" && CARGO_TARGET_DIR="$work/target" cargo build --offline --quiet)
  for _ in $(seq 1 "$rounds"); do
    touch "$dir/src/lib.rs"
    local t
    t=$( { /usr/bin/time -f "%U %S" bash -c "cd '$dir' && CARGO_TARGET_DIR='$work/target' cargo build --offline --quiet" ; } 2>&1 | tail -1 | awk '{print $1 + $2}')
    total=$(echo "$total + $t" | bc -l)
  done
  echo "$total"
}

plain=$(cpu plain)
annotated=$(cpu annotated)
printf 'plain     %.2f s CPU for %d rebuilds\nannotated %.2f s CPU for %d rebuilds\nratio     %.3f\n' \
  "$plain" "$rounds" "$annotated" "$rounds" "$(echo "$annotated / $plain" | bc -l)"

# Instructions of rustc itself for each crate (deterministic, unlike CPU time).
if [ "${INSTRUCTIONS:-1}" = 1 ] && command -v valgrind >/dev/null; then
  for name in plain annotated; do
    touch "$work/$name/src/lib.rs"
    cmd=$(cd "$work/$name" && CARGO_TARGET_DIR="$work/target" cargo build --offline -v 2>&1 | grep 'Running `' | tail -1 | sed 's/^ *Running `//; s/`$//')
    touch "$work/$name/src/lib.rs"
    (cd "$work/$name" && CARGO_MANIFEST_DIR="$PWD" valgrind --tool=callgrind --trace-children=yes \
      --callgrind-out-file="$work/callgrind.$name.%p" bash -c "exec $cmd" >/dev/null 2>&1)
    count=$(cat "$work"/callgrind."$name".* | grep -h '^summary' | awk '{s += $2} END {print s}')
    rm -f "$work"/callgrind."$name".*
    printf '%-9s %d instructions in rustc\n' "$name" "$count"
    eval "ir_$name=$count"
  done
  printf 'ratio     %.3f\n' "$(echo "$ir_annotated / $ir_plain" | bc -l)"
fi
