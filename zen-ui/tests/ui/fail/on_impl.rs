use zen_runtime::zen;

struct Handler;

#[zen(max_queries = 5)]
impl Handler {
    async fn call(&self) {}
}

fn main() {}
