//! The attribute's budget keys are the runtime's budget table, in its
//! order: a budget added to the table and not to the macro (or the other
//! way round) fails here, not in a user's build.

#[test]
fn the_attribute_knows_every_budget_of_the_table() {
    let attribute: Vec<&str> = zen_runtime::__private::budget_keys!().to_vec();
    let table: Vec<&str> = zen_runtime::Budget::ALL.iter().map(|b| b.key()).collect();
    assert_eq!(attribute, table);
}

/// The attribute's documentation (`# Arguments` of `zen_runtime::zen`) has
/// one row per key the attribute accepts, the budgets first, in the table's
/// order and with its units.
#[test]
fn the_attributes_documentation_lists_every_key() {
    let source = std::fs::read_to_string("zen-runtime/src/lib.rs").unwrap();
    let arguments = source.split("/// # Arguments").nth(1).expect("the attribute documents its arguments");
    let rows: Vec<(String, String)> = arguments
        .lines()
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("///"))
        .map(str::trim)
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let key = cells[1].trim_matches('`').trim_end_matches("(...)").to_owned();
            (key, cells[2].to_owned())
        })
        .collect();
    let budgets = zen_runtime::Budget::ALL;
    let documented: Vec<&str> = rows.iter().map(|(key, _)| key.as_str()).collect();
    let mut accepted: Vec<&str> = budgets.iter().map(|b| b.key()).collect();
    accepted.extend(zen_runtime::__private::other_keys!());
    assert_eq!(documented, accepted, "one row per key, budgets first");
    for (budget, (key, unit)) in budgets.iter().zip(&rows) {
        assert_eq!(unit, budget.unit(), "the unit of `{key}`");
    }
}
