// Every call to an external system has a timeout: no `build` without one.
fn main() {
    let _client = zen_runtime::http::Client::builder().build();
}
