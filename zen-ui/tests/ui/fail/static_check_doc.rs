// The example of `zen`'s rustdoc, whose message it quotes.
struct Db;

impl Db {
    async fn execute(&self, _: &str) {}
}

#[zen_runtime::zen(max_queries = 1)]
async fn handler(db: &Db) {
    db.execute("INSERT INTO a VALUES (1)").await;
    db.execute("INSERT INTO b VALUES (2)").await;
}

fn main() {}
