//! Dynamic SQL (generated `IN` lists, one text per call) must not grow
//! memory: zen keeps no copy of a long statement, and its own bookkeeping
//! is never charged to the scope that ran the query. Alone in its binary so
//! that the process's resident memory is this test's.

use zen_runtime::alloc::ZenAlloc;
use zen_runtime::{instrument, testing};

#[global_allocator]
static ALLOC: ZenAlloc = ZenAlloc::system();

const MIB: usize = 1 << 20;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "current_thread")]
async fn distinct_one_mib_statements_leave_no_memory_behind() {
    // One 1 MiB list, with a different number in front of it each time:
    // 512 distinct statements of one shape.
    let list: String = (0..200_000).map(|i| format!("{i},")).collect::<String>();
    let list = &list[..MIB - 64];
    // 512 runs of one shape are an N+1 suspect, whose call site is
    // symbolised from the binary's debug information: a one-time cost this
    // test is not about.
    zen_runtime::config::set_n_plus_one(0);
    let before = rss();
    // One buffer, rewritten: the test's own allocations stay flat.
    let mut sql = String::with_capacity(MIB + 64);
    let ((), report) = testing::measure(async {
        for i in 0..512 {
            use std::fmt::Write as _;
            sql.clear();
            write!(sql, "SELECT {i} FROM t WHERE id IN ({list}0)").unwrap();
            instrument::query("PostgreSQL", &sql).unwrap().finish(true);
        }
    })
    .await;
    let grown = rss().saturating_sub(before);
    assert_eq!(report.figures.queries(), 512);
    assert_eq!(report.statements.len(), 1, "one shape, one fingerprint: {:?}", report.statements);
    assert_eq!(report.statements[0].fingerprint, "SELECT ? FROM t WHERE id IN (...)");
    assert!(grown < 16 * MIB as u64, "RSS grew {} KiB", grown / 1024);
    let memory = report.figures.memory().expect("ZenAlloc is installed");
    assert!(memory.retained < 64 * 1024, "the scope retained {} bytes of zen's bookkeeping", memory.retained);
}
