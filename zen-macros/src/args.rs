//! `#[zen(key = value, ...)]` into typed arguments that keep the span of
//! every key and value, so each error lands on the token at fault. Each item
//! is read on its own, so one mistake never hides the next, and every
//! message suggests a fix that compiles.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{Expr, Lit, UnOp};

use crate::budgets::{BUDGETS, Unit};
use crate::words::{Errors, closest, err};

/// The keys that are not budgets.
pub(crate) const OTHER_KEYS: &[&str] =
    &["n_plus_one", "name", "mode", "kind", "crate", "static_check", "deny_query_in_loop", "exempt"];

/// What a blown budget does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Observe,
    Enforce,
    Strict,
}

/// The kind of work a fn is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Handler,
    Job,
    Other,
}

const MODES: &[(&str, Mode)] = &[("observe", Mode::Observe), ("enforce", Mode::Enforce), ("strict", Mode::Strict)];
const KINDS: &[(&str, Kind)] = &[("handler", Kind::Handler), ("job", Kind::Job), ("other", Kind::Other)];

impl Mode {
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Mode::Observe => "Observe",
            Mode::Enforce => "Enforce",
            Mode::Strict => "Strict",
        }
    }
}

impl Kind {
    pub(crate) fn variant(self) -> &'static str {
        match self {
            Kind::Handler => "Handler",
            Kind::Job => "Job",
            Kind::Other => "Other",
        }
    }
}

/// A value as written, with the span of the value.
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

#[derive(Default)]
pub(crate) struct Args {
    /// Each budget set, by its place in [`BUDGETS`].
    pub(crate) budgets: Vec<(usize, Setting<u64>)>,
    pub(crate) n_plus_one: Option<Setting<u32>>,
    pub(crate) name: Option<Setting<String>>,
    pub(crate) mode: Option<Setting<Mode>>,
    pub(crate) kind: Option<Setting<Kind>>,
    pub(crate) krate: Option<Setting<syn::Path>>,
    pub(crate) static_check: Option<Setting<bool>>,
    pub(crate) deny_query_in_loop: Option<Setting<bool>>,
    /// Each `exempt(...)`, in order.
    pub(crate) exempt: Vec<crate::exempt::Exempt>,
}

impl Args {
    pub(crate) fn budget(&self, key: &str) -> Option<&Setting<u64>> {
        self.budgets.iter().find(|(i, _)| BUDGETS[*i].0 == key).map(|(_, s)| s)
    }
}

fn keys() -> impl Iterator<Item = &'static str> {
    BUDGETS.iter().map(|(k, _)| *k).chain(OTHER_KEYS.iter().copied())
}

/// Parses every item, collecting all independent errors, then runs the
/// checks between keys.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Args> {
    let mut parsed = Args::default();
    let mut errors = Errors::default();
    for item in items(args) {
        errors.push(parsed.item(&item).err());
    }
    if errors.is_empty() {
        errors.push(parsed.check().err());
    }
    errors.finish().map(|()| parsed)
}

/// The attribute's tokens cut at each comma outside a group.
fn items(args: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut items = vec![Vec::new()];
    for token in args {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => items.push(Vec::new()),
            _ => items.last_mut().expect("never empty").push(token),
        }
    }
    items.retain(|item| !item.is_empty());
    items
}

impl Args {
    fn item(&mut self, item: &[TokenTree]) -> syn::Result<()> {
        let TokenTree::Ident(key_ident) = &item[0] else {
            return err(item[0].span(), format!("expected a key such as `max_queries = 5`; {}", valid_keys()));
        };
        let key = key_ident.to_string();
        let key_span = key_ident.span();
        if item.len() == 1 && MODES.iter().any(|(m, _)| *m == key) {
            return err(key_span, bare_key(&key));
        }
        if !keys().any(|k| k == key) {
            return err(key_span, unknown_key(&key, item.get(2..)));
        }
        if key == "exempt" {
            return match item.get(1) {
                Some(TokenTree::Group(g)) if item.len() == 2 => {
                    self.exempt.push(crate::exempt::parse(g)?);
                    Ok(())
                }
                _ => err(
                    key_span,
                    "write `exempt(n_plus_one, statement = \"...\", reason = \"...\")` or `exempt(budget = \"max_db_ms\", statement = \"...\", reason = \"...\")`",
                ),
            };
        }
        let value = match item.get(1) {
            None => return err(key_span, bare_key(&key)),
            Some(TokenTree::Punct(p)) if p.as_char() == '=' => &item[2..],
            Some(TokenTree::Punct(p)) if p.as_char() == ':' => {
                let shown = show(&item[2..]);
                return err(p.span(), format!("keys take `=`, not `:`; write `{key} = {shown}`"));
            }
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
                let shown = show(&g.stream().into_iter().collect::<Vec<_>>());
                return err(g.span(), format!("`{key}` takes `= value`, not parentheses; write `{key} = {shown}`"));
            }
            Some(other) => return err(other.span(), format!("expected `=` after `{key}`; write `{key} = ...`")),
        };
        if value.is_empty() {
            return err(key_span, format!("`{key}` needs a value after `=`; {}", example(&key)));
        }
        let value_span = span_of(value);
        if let TokenTree::Punct(plus) = &value[0]
            && plus.as_char() == '+'
        {
            let shown = show(&value[1..]);
            return err(plus.span(), format!("remove the `+`: write `{key} = {shown}`"));
        }
        let expr: Expr = syn::parse2(value.iter().cloned().collect())
            .map_err(|_| syn::Error::new(value_span, format!("`{key}` takes a literal value; {}", example(&key))))?;
        if let Some(index) = BUDGETS.iter().position(|(k, _)| *k == key) {
            let setting = budget_value(&key, BUDGETS[index].1, &expr)?;
            if self.budgets.iter().any(|(i, _)| *i == index) {
                return err(key_span, duplicate(&key));
            }
            self.budgets.push((index, setting));
            return Ok(());
        }
        match key.as_str() {
            "n_plus_one" => {
                let setting = integer::<u32>(&key, Unit::Count, &expr)?;
                if setting.value == 1 {
                    return err(
                        setting.span,
                        "`n_plus_one = 1` would flag every query as N+1; use 2 or more, such as `n_plus_one = 5`, or `n_plus_one = 0` to turn N+1 detection off",
                    );
                }
                put(&mut self.n_plus_one, &key, key_span, setting)
            }
            "name" => {
                let setting = string(&key, &expr, "\"billing::charge\"")?;
                if setting.value.trim().is_empty() {
                    return err(setting.span, "`name` cannot be empty; remove it to use the function's path");
                }
                put(&mut self.name, &key, key_span, setting)
            }
            "mode" => put(&mut self.mode, &key, key_span, word(&key, &expr, MODES)?),
            "kind" => put(&mut self.kind, &key, key_span, word(&key, &expr, KINDS)?),
            "crate" => {
                let setting = string(&key, &expr, "\"my_app::zen_runtime\"")?;
                let Ok(path) = syn::parse_str::<syn::Path>(&setting.value) else {
                    return err(
                        setting.span,
                        format!(
                            "`crate` must be a path to the runtime crate, such as \"my_app::zen_runtime\"; `{}` is not a path",
                            setting.value
                        ),
                    );
                };
                put(&mut self.krate, &key, key_span, Setting { value: path, span: setting.span })
            }
            "static_check" => put(&mut self.static_check, &key, key_span, boolean(&key, &expr)?),
            "deny_query_in_loop" => put(&mut self.deny_query_in_loop, &key, key_span, boolean(&key, &expr)?),
            _ => err(key_span, unknown_key(&key, None)),
        }
    }

    /// Checks between keys, once each key is known to be valid on its own.
    fn check(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        if let Some(timeout) = self.budget("timeout_ms") {
            for key in ["max_db_ms", "max_http_ms", "max_poll_ms"] {
                if let Some(s) = self.budget(key).filter(|s| s.value > timeout.value) {
                    errors.push(Some(syn::Error::new(
                        s.span,
                        format!(
                            "`{key} = {}` is greater than `timeout_ms = {}`, so it can never be reached; write `{key} = {}` or raise `timeout_ms`",
                            s.value, timeout.value, timeout.value
                        ),
                    )));
                }
            }
        }
        errors.finish()
    }
}

fn put<T>(slot: &mut Option<Setting<T>>, key: &str, key_span: Span, setting: Setting<T>) -> syn::Result<()> {
    if slot.is_some() {
        return err(key_span, duplicate(key));
    }
    *slot = Some(setting);
    Ok(())
}

fn duplicate(key: &str) -> String {
    format!("duplicate key `{key}`; keep only one `{key} = ...`")
}

fn span_of(tokens: &[TokenTree]) -> Span {
    let first = tokens[0].span();
    tokens.last().and_then(|last| first.join(last.span())).unwrap_or(first)
}

fn show(tokens: &[TokenTree]) -> String {
    let text = tokens.iter().cloned().collect::<TokenStream>().to_string();
    if text.is_empty() { "...".to_owned() } else { text }
}

fn valid_keys() -> String {
    format!("valid keys are {}", keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
}

fn example(key: &str) -> String {
    match key {
        "name" => "such as `name = \"billing::charge\"`".to_owned(),
        "mode" => "such as `mode = \"enforce\"`".to_owned(),
        "kind" => "such as `kind = \"job\"`".to_owned(),
        "crate" => "such as `crate = \"my_app::zen_runtime\"`".to_owned(),
        "static_check" | "deny_query_in_loop" => format!("such as `{key} = false`"),
        _ if key.ends_with("_ms") => format!("such as `{key} = 200`"),
        _ => format!("such as `{key} = 5`"),
    }
}

fn bare_key(key: &str) -> String {
    if let Some((word, _)) = MODES.iter().find(|(m, _)| *m == key) {
        return format!("expected `key = value`; to set the mode write `mode = \"{word}\"`");
    }
    format!("`{key}` needs a value; write `{key} = ...`, {}", example(key))
}

/// Budget keys carry their unit: `timeout_s`, `max_mem_mb` are close to a
/// key, in another unit.
fn unknown_key(key: &str, value: Option<&[TokenTree]>) -> String {
    let number = value.and_then(|v| match v {
        [TokenTree::Literal(lit)] => lit.to_string().replace('_', "").parse::<f64>().ok(),
        _ => None,
    });
    for (budget, unit) in BUDGETS {
        let base = budget.rsplit_once('_').map_or(*budget, |(b, _)| b);
        let Some(written) =
            key.strip_prefix(base).and_then(|rest| rest.strip_prefix('_').or(rest.is_empty().then_some("")))
        else {
            continue;
        };
        let Some(factor) = unit_factor(*unit, written) else { continue };
        let value = number.map_or_else(|| "...".to_owned(), |n| ceil(n * factor).to_string());
        let unit_name = match unit {
            Unit::Millis => "milliseconds",
            Unit::KiB => "KiB",
            Unit::Count => "a count",
        };
        return format!(
            "unknown key `{key}`; budget keys carry their unit, and `{budget}` is in {unit_name}: write `{budget} = {value}`"
        );
    }
    match closest(key, &keys().collect::<Vec<_>>()) {
        Some(guess) => format!("unknown key `{key}`; did you mean `{guess}`? {}", valid_keys()),
        None => format!("unknown key `{key}`; {}", valid_keys()),
    }
}

/// How many of `unit` one `written` unit is (`"s"` is 1000 ms).
fn unit_factor(unit: Unit, written: &str) -> Option<f64> {
    let written = written.to_ascii_lowercase();
    match unit {
        Unit::Millis => match written.as_str() {
            "" | "ms" | "millis" | "msec" => Some(1.0),
            "s" | "sec" | "secs" | "seconds" => Some(1000.0),
            "us" | "micros" => Some(0.001),
            "m" | "min" | "mins" | "minutes" => Some(60_000.0),
            _ => None,
        },
        Unit::KiB => match written.as_str() {
            "" | "kb" | "kib" | "k" => Some(1.0),
            "b" | "bytes" => Some(1.0 / 1024.0),
            "mb" | "mib" | "m" => Some(1024.0),
            "gb" | "gib" | "g" => Some(1024.0 * 1024.0),
            _ => None,
        },
        Unit::Count => written.is_empty().then_some(1.0),
    }
}

fn ceil(n: f64) -> u64 {
    // Whole units, rounded up: a budget never shrinks by being rewritten.
    n.ceil().clamp(0.0, u64::MAX as f64) as u64
}

/// A number with a unit as text or suffix (`"200ms"`, `2s`, `1.5`), in the
/// key's unit, if it reads as one.
fn in_unit(unit: Unit, text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, written) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(ceil(number * unit_factor(unit, written.trim())?))
}

fn budget_value(key: &str, unit: Unit, expr: &Expr) -> syn::Result<Setting<u64>> {
    let setting = integer::<u64>(key, unit, expr)?;
    if unit != Unit::Count && setting.value == 0 {
        return err(
            setting.span,
            format!("`{key} = 0` would fail every call at once; use a positive value, or remove `{key}` for no limit"),
        );
    }
    Ok(setting)
}

fn integer<T>(key: &str, unit: Unit, expr: &Expr) -> syn::Result<Setting<T>>
where
    T: std::str::FromStr + std::fmt::Display + TryFrom<u64> + Bounded,
    T::Err: std::fmt::Display,
{
    let fix = |n: u64| format!("write `{key} = {n}`");
    let lit = match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Int(lit), .. }) => lit,
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => {
            return err(
                expr.span(),
                format!("`{key}` cannot be negative; write a number of 0 or more, {}", example(key)),
            );
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Float(f), .. }) => {
            let message = match in_unit(unit, &f.to_string()) {
                Some(n) => format!("`{key}` takes a whole number, found `{}`; {}", f.base10_digits(), fix(n)),
                None => format!("`{key}` takes a whole number, found `{}`; {}", f.base10_digits(), example(key)),
            };
            return err(f.span(), message);
        }
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => {
            let message = match in_unit(unit, &s.value()) {
                Some(n) => format!("`{key}` takes a number, not a string, and its unit is in its name; {}", fix(n)),
                None => format!("`{key}` takes a number, not a string; {}", example(key)),
            };
            return err(s.span(), message);
        }
        Expr::Path(path) => {
            let word = path.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            return err(
                expr.span(),
                format!(
                    "`{key}` takes an integer literal; an attribute cannot read `{word}`, so write its value, {}",
                    example(key)
                ),
            );
        }
        other => {
            return err(other.span(), format!("`{key}` takes an integer literal, {}", example(key)));
        }
    };
    if !lit.suffix().is_empty() {
        let message = match in_unit(unit, &lit.to_string()) {
            Some(n) => format!(
                "remove the suffix `{}`: `{key}` takes a plain number and its unit is in its name; {}",
                lit.suffix(),
                fix(n)
            ),
            None => format!(
                "remove the suffix `{}`: `{key}` takes a plain number and its unit is in its name",
                lit.suffix()
            ),
        };
        return err(lit.span(), message);
    }
    match lit.base10_parse::<T>() {
        Ok(value) => Ok(Setting { value, span: lit.span() }),
        Err(_) => err(
            lit.span(),
            format!("`{key} = {}` is too large; the largest accepted value is {}", lit.base10_digits(), T::MAX),
        ),
    }
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

fn string(key: &str, expr: &Expr, example: &str) -> syn::Result<Setting<String>> {
    match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Ok(Setting { value: s.value(), span: s.span() }),
        Expr::Path(p) => {
            let path = quote::ToTokens::to_token_stream(&p.path).to_string().replace(' ', "");
            err(p.span(), format!("`{key}` takes a string; add quotes: `{key} = \"{path}\"`"))
        }
        other => err(other.span(), format!("`{key}` takes a string, such as `{key} = {example}`")),
    }
}

/// One of a few words, as a string: `mode = "enforce"`.
fn word<T: Copy>(key: &str, expr: &Expr, valid: &[(&'static str, T)]) -> syn::Result<Setting<T>> {
    let words: Vec<&str> = valid.iter().map(|(w, _)| *w).collect();
    let list = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(", ");
    let (written, span, quoted) = match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => (s.value(), s.span(), true),
        Expr::Path(p) if p.path.get_ident().is_some() => (p.path.segments[0].ident.to_string(), p.span(), false),
        other => return err(other.span(), format!("`{key}` takes a string, one of {list}")),
    };
    let lower = written.to_ascii_lowercase();
    let found = valid.iter().find(|(w, _)| *w == lower).map(|(w, _)| *w);
    match (found, quoted) {
        (Some(word), true) if word == written => {
            let value = valid.iter().find(|(w, _)| *w == word).map(|(_, v)| *v).expect("found above");
            Ok(Setting { value, span })
        }
        (Some(word), true) => err(span, format!("`{key}` values are lowercase; write `{key} = \"{word}\"`")),
        (Some(word), false) => err(span, format!("`{key}` takes a string; write `{key} = \"{word}\"`")),
        (None, _) => match closest(&lower, &words) {
            Some(guess) => err(
                span,
                format!(
                    "unknown {key} \"{written}\"; did you mean \"{guess}\"? write `{key} = \"{guess}\"`; expected one of {list}"
                ),
            ),
            None => err(span, format!("unknown {key} \"{written}\"; expected one of {list}")),
        },
    }
}

fn boolean(key: &str, expr: &Expr) -> syn::Result<Setting<bool>> {
    match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Ok(Setting { value: b.value, span: b.span() }),
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) if matches!(s.value().as_str(), "true" | "false") => {
            err(s.span(), format!("`{key}` takes `true` or `false` without quotes; write `{key} = {}`", s.value()))
        }
        other => err(other.span(), format!("`{key}` takes `true` or `false`")),
    }
}
