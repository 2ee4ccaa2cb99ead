//! The attribute's budget keys are the runtime's budget table, in its
//! order: a budget added to the table and not to the macro (or the other
//! way round) fails here, not in a user's build.

#[test]
fn the_attribute_knows_every_budget_of_the_table() {
    let attribute: Vec<&str> = zen_runtime::__private::budget_keys!().to_vec();
    let table: Vec<&str> = zen_runtime::Budget::ALL.iter().map(|b| b.key()).collect();
    assert_eq!(attribute, table);
}
