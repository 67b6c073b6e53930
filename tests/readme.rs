//! The README's claims about what a program prints are run here and compared with what the
//! program prints, so the README cannot drift from the code.
//!
//! A checked claim in README.md is an HTML comment naming this file, then a fenced `sh`
//! block with one `[VAR=VALUE ...] cargo run --release --example NAME [-- ARGS]` line, then a
//! fenced `text` block with the lines the program prints first. A training example whose
//! claim shows only its first epoch (`Epoch 0: ...`) runs with `--epochs 1`: the seed fixes
//! the initialisation and the order of the first epoch's mini-batches, so later epochs cannot
//! change the first epoch's line.
//!
//! The kernels' summation order depends on the instruction set (`tensor::isa`), and so do
//! the last bits of a trained net and, at times, a digit's class. A claim that does not set
//! `NNDL_ISA` is what a CPU with AVX-512 prints, and is checked only on such a CPU; a claim
//! with `NNDL_ISA=portable` is checked everywhere.

mod cli_support;

use cli_support::Scratch;

const MARKER: &str = "<!-- checked by tests/readme.rs";

/// One claim: the example, its arguments and the lines it must print first.
#[derive(Debug, PartialEq)]
struct Claim {
    env: Vec<(String, String)>,
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
    let body = lines[start + 1..end]
        .iter()
        .map(|l| l.to_string())
        .collect();
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
        let mut words: Vec<&str> = cmd.split_whitespace().collect();
        let mut env = Vec::new();
        while let Some((k, v)) = words.first().and_then(|w| w.split_once('=')) {
            env.push((k.to_string(), v.to_string()));
            words.remove(0);
        }
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
            env,
            example: example.to_string(),
            args,
            expected,
        });
    }
    Ok(out)
}

#[test]
fn parses_a_claim_and_refuses_a_malformed_one() {
    let good = "x\n<!-- checked by tests/readme.rs -->\n```sh\nNNDL_ISA=portable cargo run --release --example network -- --hidden 100   # note\n```\n\n```text\nEpoch 0: 1 / 2\n```\n";
    assert_eq!(
        claims(good).unwrap(),
        vec![Claim {
            env: vec![("NNDL_ISA".into(), "portable".into())],
            example: "network".into(),
            args: vec!["--hidden".into(), "100".into()],
            expected: vec!["Epoch 0: 1 / 2".into()],
        }]
    );
    let no_output =
        "<!-- checked by tests/readme.rs -->\n```sh\ncargo run --release --example network\n```\n";
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
    // The instruction set `tensor::isa::best_isa` picks when NNDL_ISA does not lower it.
    #[cfg(target_arch = "x86_64")]
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    let dir = Scratch::new("readme");
    for c in &claims {
        if !avx512 && !c.env.iter().any(|(k, _)| k == "NNDL_ISA") {
            eprintln!("skipped (this CPU has no AVX-512): {c:?}");
            continue;
        }
        let mut args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        if c.expected.len() == 1 && c.expected[0].starts_with("Epoch 0: ") {
            args.extend(["--epochs", "1"]);
        }
        let mut cmd = cli_support::command(&dir.0, &c.example, &args);
        cmd.envs(c.env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().expect("running the example");
        let what = format!("{c:?}");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let printed: Vec<&str> = stdout.lines().take(c.expected.len()).collect();
        assert_eq!(
            printed, c.expected,
            "README.md claims the lines on the right; the program printed those on the left: {what}"
        );
    }
}
