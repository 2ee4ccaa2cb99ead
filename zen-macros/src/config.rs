//! Parsing `#[zen(key = value, ...)]` into a typed configuration that keeps
//! the span of every key and value, so each error lands on the exact token.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta, Token, UnOp};

pub(crate) const KEYS: &[&str] = &[
    "max_queries",
    "max_db_ms",
    "max_mem_kb",
    "timeout_ms",
    "max_http_calls",
    "max_http_ms",
    "max_poll_ms",
    "max_rows",
    "max_response_kb",
    "n_plus_one",
    "name",
    "mode",
    "kind",
    "crate",
    "static_check",
];

const MODES: &[&str] = &["observe", "enforce", "strict"];
const KINDS: &[&str] = &["handler", "job", "other"];

/// A value as written, with the span of the value.
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Default)]
pub(crate) struct Config {
    pub(crate) max_queries: Option<Setting<u32>>,
    pub(crate) max_db_ms: Option<Setting<u64>>,
    pub(crate) max_mem_kb: Option<Setting<u64>>,
    pub(crate) timeout_ms: Option<Setting<u64>>,
    pub(crate) max_http_calls: Option<Setting<u32>>,
    pub(crate) max_http_ms: Option<Setting<u64>>,
    pub(crate) max_poll_ms: Option<Setting<u64>>,
    pub(crate) max_rows: Option<Setting<u64>>,
    pub(crate) max_response_kb: Option<Setting<u64>>,
    pub(crate) n_plus_one: Option<Setting<u32>>,
    pub(crate) name: Option<Setting<String>>,
    pub(crate) mode: Option<Setting<String>>,
    pub(crate) kind: Option<Setting<String>>,
    pub(crate) krate: Option<Setting<syn::Path>>,
    pub(crate) static_check: Option<Setting<bool>>,
}

/// Parses every key, collecting all independent errors, then runs the
/// cross-key checks.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Config> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut config = Config::default();
    let mut errors = Errors::default();
    for meta in metas {
        errors.push(config.set(meta).err());
    }
    if errors.0.is_none() {
        errors.push(config.build().err());
    }
    errors.finish().map(|()| config)
}

#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: Option<syn::Error>) {
        match (&mut self.0, error) {
            (Some(all), Some(e)) => all.combine(e),
            (all @ None, e) => *all = e,
            (Some(_), None) => {}
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn err<T>(span: Span, message: impl std::fmt::Display) -> syn::Result<T> {
    Err(syn::Error::new(span, message))
}

impl Config {
    fn set(&mut self, meta: Meta) -> syn::Result<()> {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            Meta::Path(path) => return bare_key(&path),
            Meta::List(list) => {
                let key = path_key(&list.path);
                return err(list.span(), format!("expected `{key} = value`, found `{key}(...)`; write `key = value`"));
            }
        };
        let Some(ident) = nv.path.get_ident() else {
            return err(nv.path.span(), unknown_key_message(&path_key(&nv.path)));
        };
        let key = ident.to_string();
        let key_span = ident.span();
        let value = &nv.value;
        match key.as_str() {
            "max_queries" => put(&mut self.max_queries, &key, key_span, int(&key, value, false)?),
            "max_http_calls" => put(&mut self.max_http_calls, &key, key_span, int(&key, value, false)?),
            "max_db_ms" => put(&mut self.max_db_ms, &key, key_span, int(&key, value, true)?),
            "max_mem_kb" => put(&mut self.max_mem_kb, &key, key_span, int(&key, value, true)?),
            "timeout_ms" => put(&mut self.timeout_ms, &key, key_span, int(&key, value, true)?),
            "max_http_ms" => put(&mut self.max_http_ms, &key, key_span, int(&key, value, true)?),
            "max_poll_ms" => put(&mut self.max_poll_ms, &key, key_span, int(&key, value, true)?),
            "max_rows" => put(&mut self.max_rows, &key, key_span, int(&key, value, false)?),
            "max_response_kb" => put(&mut self.max_response_kb, &key, key_span, int(&key, value, true)?),
            "n_plus_one" => put(&mut self.n_plus_one, &key, key_span, int(&key, value, false)?),
            "name" => {
                let (name, span) = string(&key, value, "\"billing::charge\"")?;
                if name.trim().is_empty() {
                    return err(span, "`name` cannot be empty; remove it to use the function's path");
                }
                put(&mut self.name, &key, key_span, (name, span))
            }
            "mode" => {
                let (mode, span) = string(&key, value, "\"enforce\"")?;
                one_of(&key, &mode, span, MODES)?;
                put(&mut self.mode, &key, key_span, (mode, span))
            }
            "kind" => {
                let (kind, span) = string(&key, value, "\"job\"")?;
                one_of(&key, &kind, span, KINDS)?;
                put(&mut self.kind, &key, key_span, (kind, span))
            }
            "crate" => {
                let (path, span) = string(&key, value, "\"my_app::zen\"")?;
                let Ok(path) = syn::parse_str::<syn::Path>(&path) else {
                    return err(
                        span,
                        format!(
                            "`crate` must be a path to the runtime crate, such as \"my_app::zen\"; `{path}` is not a path"
                        ),
                    );
                };
                put(&mut self.krate, &key, key_span, (path, span))
            }
            "static_check" => match value {
                Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => {
                    put(&mut self.static_check, &key, key_span, (b.value, b.span()))
                }
                other => err(other.span(), "`static_check` takes `true` or `false`"),
            },
            _ => err(key_span, unknown_key_message(&key)),
        }
    }

    /// Checks between keys, once each key is known to be valid on its own.
    fn build(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        if let Some(timeout) = &self.timeout_ms {
            let times = [
                ("max_db_ms", &self.max_db_ms),
                ("max_http_ms", &self.max_http_ms),
                ("max_poll_ms", &self.max_poll_ms),
            ];
            for (key, setting) in times {
                if let Some(s) = setting.as_ref().filter(|s| s.value > timeout.value) {
                    errors.push(Some(syn::Error::new(
                        s.span,
                        format!(
                            "`{key} = {}` is greater than `timeout_ms = {}`, so it can never be reached; lower `{key}` or raise `timeout_ms`",
                            s.value, timeout.value
                        ),
                    )));
                }
            }
        }
        errors.finish()
    }
}

fn put<T>(slot: &mut Option<Setting<T>>, key: &str, key_span: Span, (value, span): (T, Span)) -> syn::Result<()> {
    if slot.is_some() {
        return err(key_span, format!("duplicate key `{key}`; keep only one `{key} = ...`"));
    }
    *slot = Some(Setting { value, span });
    Ok(())
}

fn path_key(path: &syn::Path) -> String {
    quote::ToTokens::to_token_stream(path).to_string().replace(' ', "")
}

fn bare_key(path: &syn::Path) -> syn::Result<()> {
    let key = path_key(path);
    let message = if MODES.contains(&key.as_str()) {
        format!("expected `key = value`; to set the mode write `mode = \"{key}\"`")
    } else if KEYS.contains(&key.as_str()) {
        format!("`{key}` needs a value; write `{key} = ...`")
    } else {
        unknown_key_message(&key)
    };
    err(path.span(), message)
}

fn unknown_key_message(key: &str) -> String {
    let valid = KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    match closest(key, KEYS) {
        Some(guess) => {
            format!("unknown key `{key}`; did you mean `{guess}`? valid keys are {valid}")
        }
        None => format!("unknown key `{key}`; valid keys are {valid}"),
    }
}

fn one_of(key: &str, value: &str, span: Span, valid: &[&str]) -> syn::Result<()> {
    if valid.contains(&value) {
        return Ok(());
    }
    let list = valid.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ");
    match closest(value, valid) {
        Some(guess) => {
            err(span, format!("unknown {key} \"{value}\"; did you mean \"{guess}\"? expected one of {list}"))
        }
        None => err(span, format!("unknown {key} \"{value}\"; expected one of {list}")),
    }
}

/// Parses a non-negative integer literal. `positive` rejects 0 for budgets
/// where 0 would fail every call (time and memory).
fn int<T>(key: &str, value: &Expr, positive: bool) -> syn::Result<(T, Span)>
where
    T: std::str::FromStr + std::fmt::Display + Default + PartialEq + Bounded,
    T::Err: std::fmt::Display,
{
    let example = if key.ends_with("_ms") { "200" } else { "5" };
    let lit = match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. }) => lit,
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
            return err(
                value.span(),
                format!("`{key}` cannot be negative; write a number of 0 or more, such as `{key} = {example}`"),
            );
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) => {
            return err(
                f.span(),
                format!("`{key}` takes a whole number, found `{}`; write `{key} = {example}`", f.base10_digits()),
            );
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => {
            return err(
                s.span(),
                format!("`{key}` takes an integer, not a string; remove the quotes: `{key} = {}`", s.value()),
            );
        }
        other => {
            return err(other.span(), format!("`{key}` takes an integer literal, such as `{key} = {example}`"));
        }
    };
    if lit.base10_digits().starts_with('-') {
        return err(
            lit.span(),
            format!("`{key}` cannot be negative; write a number of 0 or more, such as `{key} = {example}`"),
        );
    }
    if !lit.suffix().is_empty() {
        return err(
            lit.span(),
            format!("remove the suffix `{}`: `{key}` takes a plain integer and its unit is in its name", lit.suffix()),
        );
    }
    let Ok(n) = lit.base10_parse::<T>() else {
        return err(
            lit.span(),
            format!("`{key} = {}` is too large; the largest accepted value is {}", lit.base10_digits(), T::MAX),
        );
    };
    if positive && n == T::default() {
        return err(
            lit.span(),
            format!("`{key} = 0` would fail every call at once; use a positive value, or remove `{key}` for no limit"),
        );
    }
    Ok((n, lit.span()))
}

pub(crate) trait Bounded {
    const MAX: Self;
}
impl Bounded for u32 {
    const MAX: Self = u32::MAX;
}
impl Bounded for u64 {
    const MAX: Self = u64::MAX;
}

fn string(key: &str, value: &Expr, example: &str) -> syn::Result<(String, Span)> {
    match value {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Ok((s.value(), s.span())),
        Expr::Path(p) => {
            let word = path_key(&p.path);
            err(p.span(), format!("`{key}` takes a string; add quotes: `{key} = \"{word}\"`"))
        }
        other => err(other.span(), format!("`{key}` takes a string, such as `{key} = {example}`")),
    }
}

/// The valid word closest to a misspelling, if it is close enough to be a typo.
fn closest<'a>(word: &str, valid: &[&'a str]) -> Option<&'a str> {
    valid
        .iter()
        .map(|v| (edit_distance(word, v), *v))
        .filter(|(d, v)| *d <= 2.max(v.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
