//! Process-wide settings, read from the environment once.
//!
//! `ZEN_MODE` sets the mode of every scope whose `#[zen]` does not write one.
//! Call [`init`](crate::init) at start-up to turn a bad value into an error there; a
//! process that never calls it reads the variable on first use, and on a bad
//! value logs an error naming the variable and falls back to `observe`, the
//! mode that changes nothing.

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};

use crate::tracker::budget::Mode;

/// The variable that sets the global mode.
pub const MODE_VAR: &str = "ZEN_MODE";
/// The variable that sets how many times one statement may run in a scope
/// before it is flagged as N+1 (`0`: never flag).
pub const N_PLUS_ONE_VAR: &str = "ZEN_N_PLUS_ONE";
/// The N+1 threshold when neither the attribute nor `ZEN_N_PLUS_ONE` sets one.
pub const DEFAULT_N_PLUS_ONE: u32 = 5;

/// The name every scope past [`max_names`] is grouped under, wherever names
/// are kept apart: metric labels, dashboard rows.
pub const OTHER_NAMES: &str = "(other)";

static MAX_NAMES: AtomicUsize = AtomicUsize::new(500);

/// Sets how many distinct scope names zen keeps apart (default 500): the
/// route labels of the metrics, the rows of a dashboard (per kind), the
/// request names the layer builds once and keeps. Past it, a name is
/// grouped under [`OTHER_NAMES`] (the layer builds it per request): a
/// client that invents paths or methods cannot grow them without bound.
pub fn set_max_names(max: usize) {
    MAX_NAMES.store(max, Ordering::Relaxed);
}

/// How many distinct scope names zen keeps apart.
#[must_use]
pub fn max_names() -> usize {
    MAX_NAMES.load(Ordering::Relaxed)
}

const N_UNSET: u32 = u32::MAX;
static N_PLUS_ONE: AtomicU32 = AtomicU32::new(N_UNSET);

const UNSET: u8 = 0;
static GLOBAL_MODE: AtomicU8 = AtomicU8::new(UNSET);

/// A configuration value that zen cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub variable: &'static str,
    /// What it held.
    pub value: String,
    /// What it may hold.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: expected {}", self.variable, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}

/// Parses a mode as written in `ZEN_MODE` (`None`: unset).
///
/// # Errors
/// A value other than `observe`, `enforce` or `strict` (surrounding space
/// and case are ignored; an empty value counts as unset).
pub fn parse_mode(value: Option<&str>) -> Result<Mode, ConfigError> {
    let Some(raw) = value else {
        return Ok(Mode::Observe);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "observe" => Ok(Mode::Observe),
        "enforce" => Ok(Mode::Enforce),
        "strict" => Ok(Mode::Strict),
        _ => Err(ConfigError {
            variable: MODE_VAR,
            value: raw.to_owned(),
            expected: r#"one of "observe", "enforce", "strict" (unset means "observe")"#,
        }),
    }
}

/// Parses an N+1 threshold as written in `ZEN_N_PLUS_ONE` (`None`: unset).
///
/// # Errors
/// A value that is not a whole number.
pub fn parse_n_plus_one(value: Option<&str>) -> Result<u32, ConfigError> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_N_PLUS_ONE),
        Some(raw) => raw.parse().map_err(|_| ConfigError {
            variable: N_PLUS_ONE_VAR,
            value: raw.to_owned(),
            expected: "a whole number of repetitions, such as 5 (0 turns N+1 detection off)",
        }),
    }
}

/// Reads `ZEN_MODE` and `ZEN_N_PLUS_ONE` and makes them global; returns
/// the global mode. (`zen_runtime::init` calls it, with the settings of
/// the features on.)
///
/// # Errors
/// `ZEN_MODE` holds something other than a mode name, or `ZEN_N_PLUS_ONE`
/// something other than a whole number.
pub(crate) fn init() -> Result<Mode, ConfigError> {
    let mode = parse_mode(std::env::var(MODE_VAR).ok().as_deref())?;
    let n_plus_one = parse_n_plus_one(std::env::var(N_PLUS_ONE_VAR).ok().as_deref())?;
    set_global_mode(mode);
    set_n_plus_one(n_plus_one);
    Ok(mode)
}

/// Sets how many times one statement may run in a scope before it is
/// flagged as N+1 (`0`: never), for scopes whose attribute sets none.
pub fn set_n_plus_one(threshold: u32) {
    N_PLUS_ONE.store(threshold.min(N_UNSET - 1), Ordering::Relaxed);
}

/// The global N+1 threshold.
pub fn n_plus_one() -> u32 {
    match N_PLUS_ONE.load(Ordering::Relaxed) {
        N_UNSET => {
            let threshold = parse_n_plus_one(std::env::var(N_PLUS_ONE_VAR).ok().as_deref()).unwrap_or_else(|e| {
                tracing::error!(target: "zen", "{e}; using {DEFAULT_N_PLUS_ONE}");
                DEFAULT_N_PLUS_ONE
            });
            let _ = N_PLUS_ONE.compare_exchange(N_UNSET, threshold, Ordering::Relaxed, Ordering::Relaxed);
            N_PLUS_ONE.load(Ordering::Relaxed)
        }
        n => n,
    }
}

/// Sets the mode of every scope whose attribute does not write one.
pub fn set_global_mode(mode: Mode) {
    GLOBAL_MODE.store(encode(mode), Ordering::Relaxed);
}

/// The mode of every scope whose attribute does not write one.
pub fn global_mode() -> Mode {
    match GLOBAL_MODE.load(Ordering::Relaxed) {
        UNSET => lazy_init(),
        m => decode(m),
    }
}

#[cold]
fn lazy_init() -> Mode {
    let mode = parse_mode(std::env::var(MODE_VAR).ok().as_deref()).unwrap_or_else(|e| {
        tracing::error!(target: "zen", "{e}; using \"observe\" (call zen_runtime::init() at start-up to fail instead)");
        Mode::Observe
    });
    // A concurrent `set_global_mode` wins over the environment.
    match GLOBAL_MODE.compare_exchange(UNSET, encode(mode), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => mode,
        Err(current) => decode(current),
    }
}

const fn encode(mode: Mode) -> u8 {
    match mode {
        Mode::Observe => 1,
        Mode::Enforce => 2,
        Mode::Strict => 3,
    }
}

const fn decode(m: u8) -> Mode {
    match m {
        2 => Mode::Enforce,
        3 => Mode::Strict,
        _ => Mode::Observe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_rejects_the_rest() {
        assert_eq!(parse_mode(None), Ok(Mode::Observe));
        assert_eq!(parse_mode(Some("")), Ok(Mode::Observe));
        assert_eq!(parse_mode(Some(" Enforce ")), Ok(Mode::Enforce));
        assert_eq!(parse_mode(Some("strict")), Ok(Mode::Strict));
        let err = parse_mode(Some("enforcing")).unwrap_err();
        assert_eq!(err.variable, "ZEN_MODE");
        let text = err.to_string();
        assert!(text.contains("ZEN_MODE=\"enforcing\""), "{text}");
        assert!(text.contains("\"observe\", \"enforce\", \"strict\""), "{text}");
    }
}
