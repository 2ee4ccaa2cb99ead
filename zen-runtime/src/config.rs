//! Process-wide settings, read from the environment once.
//!
//! `ZEN_MODE` sets the mode of every scope whose `#[zen]` does not write one.
//! Call [`init`] at start-up to turn a bad value into an error there; a
//! process that never calls it reads the variable on first use, and on a bad
//! value logs an error naming the variable and falls back to `observe`, the
//! mode that changes nothing.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::budget::Mode;

/// The variable that sets the global mode.
pub const MODE_VAR: &str = "ZEN_MODE";

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
    pub expected: &'static [&'static str],
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected one of ",
            self.variable, self.value
        )?;
        for (i, v) in self.expected.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{v:?}")?;
        }
        write!(f, ", or unset for \"observe\"")
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
            expected: &["observe", "enforce", "strict"],
        }),
    }
}

/// Reads `ZEN_MODE` and makes it the global mode. Call it at start-up, before
/// serving, so a bad value stops the process with a clear error.
///
/// # Errors
/// `ZEN_MODE` holds something other than a mode name.
pub fn init() -> Result<Mode, ConfigError> {
    let value = std::env::var(MODE_VAR).ok();
    let mode = parse_mode(value.as_deref())?;
    set_global_mode(mode);
    Ok(mode)
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
    let mode = init().unwrap_or_else(|e| {
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
        assert!(
            text.contains("\"observe\", \"enforce\", \"strict\""),
            "{text}"
        );
    }
}
