use zen_runtime::zen;

trait Repository {
    #[zen(max_queries = 5)]
    async fn load(&self) -> u32;
}

fn main() {}
