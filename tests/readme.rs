//! The README's claims about what a program prints are run here and compared with what the
//! program prints, so the README cannot drift from the code.
//!
//! A checked claim in README.md is an HTML comment naming this file, then a fenced `sh`
//! block with one `cargo run --release --example NAME [-- ARGS]` line, then a fenced `text`
//! block with the lines the program prints first. A training example whose claim shows only
//! its first epoch (`Epoch 0: ...`) runs with `--epochs 1`: the seed fixes the
//! initialisation and the order of the first epoch's mini-batches, so later epochs cannot
//! change the first epoch's line.

mod cli_support;

use cli_support::Scratch;

const MARKER: &str = "<!-- checked by tests/readme.rs";

/// One claim: the example, its arguments and the lines it must print first.
#[derive(Debug, PartialEq)]
struct Claim {
    example: String,
    args: Vec<String>,
    expected: Vec<String>,
}

/// The lines of the fenced block of language `lang` that starts at or after line `from`,
/// and the index of the line after its closing fence.
fn fenced(lines: &[&str], from: usize, lang: &str) -> Result<(Vec<String>, usize), String> {
    let open = format!("```{lang}");
    let start = lines[from..]
        .iter()
        .position(|l| !l.trim().is_empty())
        .map(|i| from + i)
        .filter(|&i| lines[i].trim() == open)
        .ok_or_else(|| format!("line {}: expected a ```{lang} block", from + 1))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim() == "```")
        .map(|i| start + 1 + i)
        .ok_or_else(|| format!("line {}: unclosed block", start + 1))?;
    let body = lines[start + 1..end].iter().map(|l| l.to_string()).collect();
    Ok((body, end + 1))
}

/// Every checked claim of `readme`.
fn claims(readme: &str) -> Result<Vec<Claim>, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if !l.trim_start().starts_with(MARKER) {
            continue;
        }
        let (cmd, next) = fenced(&lines, i + 1, "sh")?;
        let (expected, _) = fenced(&lines, next, "text")?;
        let [cmd] = cmd.as_slice() else {
            return Err(format!("line {}: the sh block must be one command", i + 2));
        };
        // A comment after the command is for the reader.
        let cmd = cmd.split(" #").next().unwrap_or_default();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let rest = words
            .strip_prefix(&["cargo", "run", "--release", "--example"][..])
            .ok_or_else(|| format!("line {}: not `cargo run --release --example`", i + 3))?;
        let (example, args) = rest
            .split_first()
            .ok_or_else(|| format!("line {}: no example named", i + 3))?;
        let args = match args.split_first() {
            Some((&"--", a)) => a.iter().map(|s| s.to_string()).collect(),
            None => Vec::new(),
            Some(_) => return Err(format!("line {}: arguments must follow `--`", i + 3)),
        };
        if expected.is_empty() {
            return Err(format!("line {}: no expected output", i + 1));
        }
        out.push(Claim {
            example: example.to_string(),
            args,
            expected,
        });
    }
    Ok(out)
}

#[test]
fn parses_a_claim_and_refuses_a_malformed_one() {
    let good = "x\n<!-- checked by tests/readme.rs -->\n```sh\ncargo run --release --example network -- --hidden 100   # note\n```\n\n```text\nEpoch 0: 1 / 2\n```\n";
    assert_eq!(
        claims(good).unwrap(),
        vec![Claim {
            example: "network".into(),
            args: vec!["--hidden".into(), "100".into()],
            expected: vec!["Epoch 0: 1 / 2".into()],
        }]
    );
    let no_output = "<!-- checked by tests/readme.rs -->\n```sh\ncargo run --release --example network\n```\n";
    assert!(claims(no_output).is_err());
    let not_cargo = "<!-- checked by tests/readme.rs -->\n```sh\nls\n```\n```text\nx\n```\n";
    assert!(claims(not_cargo).is_err());
}

#[test]
fn readme_output_claims_match_the_programs() {
    let readme = std::fs::read_to_string(cli_support::root().join("README.md")).unwrap();
    let claims = claims(&readme).unwrap_or_else(|e| panic!("README.md: {e}"));
    // The headline (network's first epoch) must stay checked, whatever else is.
    assert!(
        claims
            .iter()
            .any(|c| c.example == "network" && c.expected[0].starts_with("Epoch 0: ")),
        "README.md has no checked `network` headline: {claims:?}"
    );
    let dir = Scratch::new("readme");
    for c in &claims {
        let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        if c.expected.len() == 1 && c.expected[0].starts_with("Epoch 0: ") {
            args.extend(["--epochs", "1"]);
        }
        let run = dir.run(&c.example, &args);
        let printed: Vec<&str> = run.ok().lines().take(c.expected.len()).collect();
        assert_eq!(
            printed, c.expected,
            "README.md claims `{}` prints the lines on the right; it printed those on the left",
            run.what
        );
    }
}
