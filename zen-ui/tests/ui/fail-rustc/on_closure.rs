use zen_runtime::zen;

fn main() {
    let handler = #[zen] async || {};
    let _ = handler;
}
