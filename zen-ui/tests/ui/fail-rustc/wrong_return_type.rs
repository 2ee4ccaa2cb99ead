use zen_runtime::zen;

#[zen(max_queries = 5)]
async fn handler() -> u32 {
    String::from("not a number")
}

fn main() {}
