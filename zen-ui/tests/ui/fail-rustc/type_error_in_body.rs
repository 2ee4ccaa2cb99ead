use zen_runtime::zen;

#[zen(max_queries = 5)]
async fn handler() -> u32 {
    let n: u32 = "five";
    n
}

fn main() {}
