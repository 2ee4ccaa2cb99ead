//! `zen suggest [--margin PERCENT] [--min-samples N] FILE...`: budgets proposed from the
//! reports a run wrote with `zen_runtime::sinks::JsonLines`.

use std::process::ExitCode;

const USAGE: &str = "usage: zen suggest [--margin PERCENT] [--min-samples N] FILE...\n\
    reads zen's JSON-lines reports (zen_runtime::sinks::JsonLines) and proposes a #[zen(...)] line per route and job:\n\
    the p99 of each figure plus PERCENT (default 50), rounded up to two significant digits,\n\
    from successful reports only, and only for a scope with at least N of them (default 20)";

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

fn run(args: &[String]) -> Result<String, String> {
    let Some((command, rest)) = args.split_first() else { return Err(USAGE.into()) };
    if command != "suggest" {
        return Err(format!("unknown command `{command}`\n{USAGE}"));
    }
    let mut settings = zen_cli::Settings::default();
    let mut files = Vec::new();
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
    let mut records = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: cannot read it: {e}"))?;
        let text = text(file, bytes)?;
        records.extend(zen_cli::parse(file, &text).map_err(|e| e.to_string())?);
    }
    Ok(zen_cli::render(&zen_cli::suggest(&records, settings), settings))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(text) => {
            #[allow(clippy::print_stdout, reason = "a command's output")]
            {
                print!("{text}");
            }
            ExitCode::SUCCESS
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
