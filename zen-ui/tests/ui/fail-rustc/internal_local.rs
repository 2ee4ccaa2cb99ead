use zen_runtime::zen;

#[zen(max_queries = 5)]
async fn handler() -> &'static str {
    // The scope's site is bound by the expansion, out of the user's reach.
    __zen_site.to_string();
    "ok"
}

fn main() {}
