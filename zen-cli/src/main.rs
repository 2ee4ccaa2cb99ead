//! `zen suggest [--margin PERCENT] [--min-samples N] FILE...`: budgets proposed from the
//! reports a run wrote with `zen_runtime::sinks::JsonLines`; `zen diff --before FILE...
//! --after FILE... [--markdown] [--fail-above PERCENT]`: two runs compared; `zen rules
//! [--threshold PERCENT] [--short WINDOW] [--long WINDOW] [--for DURATION] [--severity WORD]`: a
//! Prometheus rule file from zen's metrics; `zen lock report [--format sarif|github|junit|markdown]
//! FILE...`: the budget lock's verdict (`ZEN_LOCK_REPORT`) in the formats CI tools read.

use std::process::ExitCode;

const USAGE: &str = "usage: zen suggest [--margin PERCENT] [--min-samples N] FILE...\n\
    \x20      zen diff --before FILE... --after FILE... [--markdown] [--fail-above PERCENT]\n\
    \x20      zen rules [--threshold PERCENT] [--short WINDOW] [--long WINDOW] [--for DURATION] [--severity WORD]\n\
    \x20      zen lock report [--format sarif|github|junit|markdown] FILE...\n\
    suggest reads zen's JSON-lines reports (zen_runtime::sinks::JsonLines) and proposes a #[zen(...)] line per route\n\
    and job: the p99 of each figure plus PERCENT (default 50), rounded up to two significant digits,\n\
    from successful reports only, and only for a scope with at least N of them (default 20).\n\
    diff compares two runs per route and job: p50, p99 and max of queries, database time, memory and time, and the\n\
    statements new or run more often; with --fail-above it exits with 1 when a p99 grew by more than PERCENT\n\
    (and by a whole unit, or from nothing), a statement is new, or a scope has no successful report after.\n\
    rules writes a Prometheus rule file for every route and job from zen_runtime's metrics: the share of scopes over\n\
    each budget per window, the p99 of used / limit, and an alert, ZenBudgetExceeded, when more than PERCENT\n\
    (default 2) of a route's scopes exceed a budget over both windows (default 5m and 1h) for DURATION (default 2m),\n\
    labelled severity=WORD (default page).\n\
    lock report reads the verdict the test processes of a run appended to the file named by ZEN_LOCK_REPORT (with\n\
    ZEN_LOCK=check) and writes it as SARIF 2.1.0 (a result per regression, at the line of the statement that grew),\n\
    GitHub Actions ::error annotations, JUnit XML (a test case per locked scope) or Markdown (default: what grew,\n\
    what is new, what can tighten); paths are relative to the repository";

/// The file as text. A file still being written may end inside a line, and
/// inside a character: that last line is left to `parse`, which skips it.
fn text(file: &str, bytes: Vec<u8>) -> Result<String, String> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            if bytes[valid..].contains(&b'\n') {
                let line = bytes[..valid].iter().filter(|b| **b == b'\n').count() + 1;
                return Err(format!("{file}:{line}: not UTF-8"));
            }
            Ok(String::from_utf8_lossy(&bytes[..valid]).into_owned())
        }
    }
}

/// The records of every file named.
fn read(files: &[&str]) -> Result<Vec<zen_cli::Record>, String> {
    let mut records = Vec::new();
    for &file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read it: {e}"))?;
        let text = text(file, bytes)?;
        records.extend(zen_cli::parse(file, &text).map_err(|e| e.to_string())?);
    }
    Ok(records)
}

/// What to print, and whether the command found what it was told to fail on.
fn run(args: &[String]) -> Result<(String, bool), String> {
    match args.split_first() {
        Some((command, rest)) if command == "suggest" => suggest(rest).map(|text| (text, false)),
        Some((command, rest)) if command == "diff" => diff(rest),
        Some((command, rest)) if command == "rules" => rules(rest).map(|text| (text, false)),
        Some((command, rest)) if command == "lock" => lock(rest).map(|text| (text, false)),
        Some((command, _)) if command == "-h" || command == "--help" => Ok((format!("{USAGE}\n"), false)),
        Some((command, _)) => Err(format!("unknown command `{command}`\n{USAGE}")),
        None => Err(USAGE.into()),
    }
}

fn diff(args: &[String]) -> Result<(String, bool), String> {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let (mut markdown, mut fail_above) = (false, None);
    let mut side: Option<&mut Vec<&str>> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--before" => side = Some(&mut before),
            "--after" => side = Some(&mut after),
            "--markdown" => markdown = true,
            "--fail-above" => {
                let value = rest.next().ok_or("--fail-above needs a percentage, such as `--fail-above 10`")?;
                let percent: f64 = value
                    .trim_end_matches('%')
                    .parse()
                    .ok()
                    .filter(|p: &f64| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| {
                        format!(
                            "--fail-above takes a percentage of 0 or more, such as `--fail-above 10`; found `{value}`"
                        )
                    })?;
                fail_above = Some(percent);
            }
            "-h" | "--help" => return Ok((format!("{USAGE}\n"), false)),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`\n{USAGE}")),
            file => match side.as_deref_mut() {
                Some(files) => files.push(file),
                None => return Err(format!("`{file}`: say whose it is with --before or --after first\n{USAGE}")),
            },
        }
    }
    if before.is_empty() || after.is_empty() {
        return Err(format!("name the reports of both runs: --before FILE... --after FILE...\n{USAGE}"));
    }
    let change = zen_cli::diff(&read(&before)?, &read(&after)?);
    if change.scopes.is_empty() && change.only.iter().all(Vec::is_empty) {
        return Err("neither run has a successful report: nothing to compare".into());
    }
    let failed = fail_above.is_some_and(|p| change.exceeds(p));
    let mut text = zen_cli::render_diff(&change, markdown);
    if let Some(p) = fail_above {
        let verdict = if failed { "failed" } else { "passed" };
        text.push_str(&format!("\n{verdict}: --fail-above {p}% (a p99 grown more, or a new statement, fails)\n"));
    }
    Ok((text, failed))
}

fn lock(args: &[String]) -> Result<String, String> {
    let Some((sub, rest)) = args.split_first().filter(|(sub, _)| *sub == "report") else {
        return match args.first().map(String::as_str) {
            Some("-h" | "--help") => Ok(format!("{USAGE}\n")),
            _ => Err(format!("`zen lock` has one command, `report`\n{USAGE}")),
        };
    };
    debug_assert_eq!(sub, "report");
    let mut format = zen_cli::ReportFormat::Markdown;
    let mut files = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--format" => {
                let value = rest.next().ok_or("--format needs sarif, github, junit or markdown")?;
                format = zen_cli::ReportFormat::parse(value)?;
            }
            "-h" | "--help" => return Ok(format!("{USAGE}\n")),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`\n{USAGE}")),
            file => files.push(file),
        }
    }
    if files.is_empty() {
        return Err(format!("name the file ZEN_LOCK_REPORT named\n{USAGE}"));
    }
    let mut texts = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read it: {e}"))?;
        texts.push((file, text(file, bytes)?));
    }
    let verdicts = zen_cli::parse_verdicts(texts.iter().map(|(f, t)| (*f, t.as_str()))).map_err(|e| e.to_string())?;
    Ok(zen_cli::render_verdicts(&verdicts, format))
}

fn rules(args: &[String]) -> Result<String, String> {
    let mut settings = zen_cli::RuleSettings::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let flag = arg.as_str();
        if flag == "-h" || flag == "--help" {
            return Ok(format!("{USAGE}\n"));
        }
        let slot = match flag {
            "--short" => &mut settings.short,
            "--long" => &mut settings.long,
            "--for" => &mut settings.hold,
            "--severity" => &mut settings.severity,
            "--threshold" => {
                let value = rest.next().ok_or("--threshold needs a percentage, such as `--threshold 2`")?;
                settings.threshold_percent = value
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("--threshold takes a percentage, such as `--threshold 2`; found `{value}`"))?;
                continue;
            }
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        };
        *slot = rest.next().ok_or_else(|| format!("{flag} needs a value"))?.clone();
    }
    zen_cli::render_rules(&settings)
}

fn suggest(rest: &[String]) -> Result<String, String> {
    let mut settings = zen_cli::Settings::default();
    let mut files: Vec<&str> = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--margin" => {
                let value = rest.next().ok_or("--margin needs a whole percentage, such as `--margin 50`")?;
                settings.margin_percent = value.trim_end_matches('%').parse().map_err(|_| {
                    format!("--margin takes a whole percentage, such as `--margin 50`; found `{value}`")
                })?;
            }
            "--min-samples" => {
                let value = rest.next().ok_or("--min-samples needs a count, such as `--min-samples 20`")?;
                settings.min_samples = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("--min-samples takes a count of 1 or more, such as `--min-samples 20`; found `{value}`")
                })?;
            }
            "-h" | "--help" => return Ok(format!("{USAGE}\n")),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`\n{USAGE}")),
            file => files.push(file),
        }
    }
    if files.is_empty() {
        return Err(format!("name at least one reports file\n{USAGE}"));
    }
    let records = read(&files)?;
    Ok(zen_cli::render(&zen_cli::suggest(&records, settings), settings))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok((text, failed)) => {
            #[allow(clippy::print_stdout, reason = "a command's output")]
            {
                print!("{text}");
            }
            if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("zen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn a_file_cut_inside_its_last_character_reads_up_to_it() {
        let mut bytes = "{\"a\":1}\n{\"name\":\"caf".as_bytes().to_vec();
        bytes.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(text("r.jsonl", bytes).unwrap(), "{\"a\":1}\n{\"name\":\"caf");
        let mut bad = b"{\"a\":1}\n\xff\n".to_vec();
        bad.extend_from_slice(b"{}\n");
        assert_eq!(text("r.jsonl", bad).unwrap_err(), "r.jsonl:2: not UTF-8");
    }
}
