//! `exempt(n_plus_one, statement = "...", reason = "...", until = "2027-03-31")`
//! and `exempt(budget = "max_db_ms", statement = "...", reason = "...")`:
//! a known N+1 or overrun the team accepts, read into a typed value whose
//! every mistake is an error on the token at fault.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::{Expr, Lit};

use crate::budgets::BUDGETS;
use crate::words::{Errors, closest, err};

/// What an exemption accepts.
pub(crate) enum What {
    NPlusOne,
    /// A budget, by its place in [`BUDGETS`].
    Budget(usize),
}

/// The statement or call site it is about.
pub(crate) enum Matches {
    Statement(String),
    CallSite(String),
}

pub(crate) struct Exempt {
    pub(crate) what: What,
    pub(crate) matches: Matches,
    pub(crate) reason: String,
    pub(crate) until: Option<(u16, u8, u8)>,
}

const KEYS: &[&str] = &["n_plus_one", "budget", "statement", "call_site", "reason", "until"];

fn keys() -> String {
    KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

/// Reads `YYYY-MM-DD`, a day that exists.
fn date(text: &str) -> Option<(u16, u8, u8)> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day): (u16, u8, u8) =
        (text[..4].parse().ok()?, text[5..7].parse().ok()?, text[8..].parse().ok()?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    (year >= 1970 && (1..=days).contains(&day)).then_some((year, month, day))
}

fn string(key: &str, value: &[TokenTree], span: Span) -> syn::Result<(String, Span)> {
    let expr: Expr = syn::parse2(value.iter().cloned().collect())
        .map_err(|_| syn::Error::new(span, format!("`{key}` takes a string, such as `{key} = \"...\"`")))?;
    match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Ok((s.value(), s.span())),
        _ => err(span, format!("`{key}` takes a string in quotes, such as `{key} = \"...\"`")),
    }
}

/// Parses the group after `exempt`.
pub(crate) fn parse(group: &proc_macro2::Group) -> syn::Result<Exempt> {
    if group.delimiter() != Delimiter::Parenthesis {
        return err(group.span(), "write `exempt(...)` with parentheses");
    }
    let (mut n_plus_one, mut budget, mut statement, mut call_site, mut reason, mut until) =
        (None, None, None, None, None, None);
    let mut errors = Errors::default();
    let mut items = vec![Vec::new()];
    for token in group.stream() {
        match &token {
            TokenTree::Punct(p) if p.as_char() == ',' => items.push(Vec::new()),
            _ => items.last_mut().expect("never empty").push(token),
        }
    }
    for item in items.iter().filter(|i| !i.is_empty()) {
        errors.push(
            (|| -> syn::Result<()> {
                let TokenTree::Ident(ident) = &item[0] else {
                    return err(item[0].span(), format!("expected a key; the keys of `exempt(...)` are {}", keys()));
                };
                let key = ident.to_string();
                let key_span = ident.span();
                if !KEYS.contains(&key.as_str()) {
                    return match closest(&key, KEYS) {
                        Some(guess) => err(key_span, format!("unknown key `{key}` in `exempt(...)`; did you mean `{guess}`? the keys are {}", keys())),
                        None => err(key_span, format!("unknown key `{key}` in `exempt(...)`; the keys are {}", keys())),
                    };
                }
                if key == "n_plus_one" {
                    if item.len() > 1 {
                        return err(item[1].span(), "write `n_plus_one` alone: `exempt(n_plus_one, statement = \"...\", reason = \"...\")`");
                    }
                    return put(&mut n_plus_one, &key, key_span, key_span);
                }
                let value = match item.get(1) {
                    Some(TokenTree::Punct(p)) if p.as_char() == '=' && item.len() > 2 => &item[2..],
                    _ => return err(key_span, format!("write `{key} = \"...\"`")),
                };
                let span = value[0].span();
                let (text, span) = string(&key, value, span)?;
                match key.as_str() {
                    "budget" => {
                        let keys: Vec<&str> = BUDGETS.iter().map(|(k, _)| *k).collect();
                        let Some(index) = keys.iter().position(|k| *k == text) else {
                            let hint = closest(&text, &keys).map_or_else(String::new, |g| format!("did you mean \"{g}\"? "));
                            return err(span, format!("unknown budget \"{text}\"; {hint}the budgets are {}", keys.join(", ")));
                        };
                        put(&mut budget, &key, key_span, (index, span))
                    }
                    "statement" | "call_site" | "reason" if text.trim().is_empty() => {
                        err(span, format!("`{key}` cannot be empty"))
                    }
                    "statement" => put(&mut statement, &key, key_span, text),
                    "call_site" => put(&mut call_site, &key, key_span, text),
                    "reason" => put(&mut reason, &key, key_span, text),
                    _ => match date(&text) {
                        Some(d) => put(&mut until, &key, key_span, d),
                        None => err(span, format!("`until` takes a date that exists, written `YYYY-MM-DD`, such as `until = \"2027-03-31\"`; found \"{text}\"")),
                    },
                }
            })()
            .err(),
        );
    }
    errors.finish()?;
    let what = match (n_plus_one, budget) {
        (Some(_), None) => What::NPlusOne,
        (None, Some((index, _))) => What::Budget(index),
        (Some(_), Some((_, span))) => {
            return err(
                span,
                "an exemption accepts one thing: `n_plus_one` or one `budget`, not both; write two `exempt(...)`",
            );
        }
        (None, None) => {
            return err(
                group.span(),
                "say what `exempt(...)` accepts: `n_plus_one`, or an overrun with `budget = \"max_db_ms\"`",
            );
        }
    };
    let matches = match (statement, call_site) {
        (Some(s), None) => Matches::Statement(s),
        (None, Some(c)) if matches!(what, What::NPlusOne) => Matches::CallSite(c),
        (None, Some(_)) => {
            return err(
                group.span(),
                "an overrun is exempted for a statement: write `statement = \"...\"` instead of `call_site`",
            );
        }
        (Some(_), Some(_)) => return err(group.span(), "write `statement` or `call_site`, not both"),
        (None, None) => {
            return err(
                group.span(),
                "say which statement `exempt(...)` is about: `statement = \"SELECT ...\"` or `call_site = \"src/file.rs:42\"`",
            );
        }
    };
    let Some(reason) = reason else {
        return err(group.span(), "`exempt(...)` needs a `reason = \"...\"`: why the team accepts it");
    };
    Ok(Exempt { what, matches, reason, until })
}

fn put<T>(slot: &mut Option<T>, key: &str, span: Span, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return err(span, format!("duplicate key `{key}` in `exempt(...)`"));
    }
    *slot = Some(value);
    Ok(())
}

/// The exemptions as a static slice of the runtime's type.
pub(crate) fn expand(exempts: &[Exempt], private: &TokenStream) -> TokenStream {
    let items = exempts.iter().map(|e| {
        let what = match e.what {
            What::NPlusOne => quote::quote!(#private::Exempted::NPlusOne),
            What::Budget(index) => {
                let key = syn::Ident::new(BUDGETS[index].0, Span::mixed_site());
                quote::quote!(#private::Exempted::Budget(#private::by_key::#key))
            }
        };
        let matches = match &e.matches {
            Matches::Statement(s) => quote::quote!(#private::Matches::Statement(#private::Cow::Borrowed(#s))),
            Matches::CallSite(s) => quote::quote!(#private::Matches::CallSite(#private::Cow::Borrowed(#s))),
        };
        let reason = &e.reason;
        let until = match e.until {
            Some((year, month, day)) => {
                quote::quote!(::core::option::Option::Some(#private::Date { year: #year, month: #month, day: #day }))
            }
            None => quote::quote!(::core::option::Option::None),
        };
        quote::quote! {
            #private::Exemption { what: #what, matches: #matches, reason: #private::Cow::Borrowed(#reason), until: #until }
        }
    });
    quote::quote!([#(#items),*])
}
