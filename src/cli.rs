//! The command line every program shares: the flags ([`Common`], [`Base`], [`Tuning`],
//! [`Resume`], ...), the parsers behind their numbers, and one way to fail (one line on
//! stderr, exit code 2), so the same flag means, defaults and refuses the same on every
//! program.
//!
//! The parsers take the text a user typed and give the value or one line saying what is
//! wrong with it, before any data is loaded. They fit clap's `value_parser`
//! (`fn(&str) -> Result<T, String>`), and reject what the programs cannot use: NaN,
//! infinities, negative rates and a learning rate that rounds to zero in the `f32` a network
//! trains in.

mod flags;
mod speeds;

pub use flags::{Base, Common, DataDir, Hidden, Lambda, Resume, Tuning};
pub use speeds::Speeds;

use mnist::text::quote;

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("{} is not a number", quote(s)))
}

/// A finite number > 0 whose `f32` is > 0 and finite (a learning rate: `1e-50` would train
/// nothing).
pub fn positive_rate(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    let f = v as f32;
    if v.is_finite() && v > 0.0 && f > 0.0 && f.is_finite() {
        Ok(v)
    } else {
        Err(format!(
            "{} must be a positive number an f32 holds (from {:e} to {:e})",
            quote(s),
            f32::MIN_POSITIVE,
            f32::MAX
        ))
    }
}

/// A finite number >= 0 (a regularisation strength).
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v >= 0.0 && (v as f32).is_finite() {
        Ok(v)
    } else {
        Err(format!("{} must be a finite number >= 0", quote(s)))
    }
}

/// A number in `[0, 1)` (a momentum coefficient, an average's decay).
pub fn unit_interval(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{} must be in [0, 1)", quote(s)))
    }
}

/// A whole number >= 1 (a count: epochs of patience, nets, images, threads).
pub fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        Ok(_) => Err(format!("{} must be at least 1", quote(s))),
        Err(_) => Err(format!("{} is not a whole number >= 1", quote(s))),
    }
}

/// A size in bytes, with an optional `K`, `M`, `G` or `T` (powers of 1024) and a `B`:
/// `8G`, `512MB`, `1000000` (read as `NNDL_MAX_MEMORY` is, [`nn::memory::parse_size`]).
pub fn bytes(s: &str) -> Result<u64, String> {
    match nn::memory::parse_size(s) {
        Some(b) if b > 0 => Ok(b),
        _ => Err(format!(
            "{} is not a size in bytes (e.g. 8G, 512M; the unit must be K, M, G or T)",
            quote(s)
        )),
    }
}

/// Runs `body`, printing an error as one line and exiting with code 2.
pub fn exit_on_error(body: impl FnOnce() -> anyhow::Result<()>) {
    if let Err(e) = body() {
        // Library errors often show their cause already ("path: io error"): say it once.
        let mut msg = String::new();
        for cause in e.chain().map(|c| c.to_string()) {
            if !msg.contains(&cause) {
                if !msg.is_empty() {
                    msg.push_str(": ");
                }
                msg.push_str(&cause);
            }
        }
        eprintln!("error: {}", one_line(&msg));
        std::process::exit(2);
    }
}

/// The command line parsed, or, on a mistake in it, clap's first line (`error: ...`) and a
/// pointer to `--help`, exit code 2. `--help` and `--version` print as usual.
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit();
        }
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("error: bad arguments");
        eprintln!("{first} (see --help)");
        std::process::exit(2);
    })
}

/// The longest error line printed: the readers quote at most ~200 characters of a file, but
/// no message, whatever its source, may flood a terminal or a log.
const MAX_ERROR_CHARS: usize = 2000;

/// A message of several lines (some errors list every place searched) as one line, cut at
/// [`MAX_ERROR_CHARS`].
fn one_line(msg: &str) -> String {
    let mut out = String::new();
    for l in msg.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(l);
    }
    let n = out.chars().count();
    if n > MAX_ERROR_CHARS {
        out = out.chars().take(MAX_ERROR_CHARS).collect();
        out.push_str(&format!("... ({} more characters)", n - MAX_ERROR_CHARS));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_parser_takes_what_it_should_and_names_what_it_refuses() {
        assert_eq!(positive_rate("0.5"), Ok(0.5));
        assert_eq!(positive_rate(" 3 "), Ok(3.0));
        for bad in ["0", "-1", "1e-50", "1e40", "NaN", "inf", "abc", ""] {
            let e = positive_rate(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(non_negative("0"), Ok(0.0));
        for bad in ["-5", "NaN", "-inf", "1e39"] {
            assert!(non_negative(bad).is_err(), "{bad}");
        }
        assert_eq!(unit_interval("0.9"), Ok(0.9));
        assert!(unit_interval("1").is_err() && unit_interval("-0.1").is_err());
        assert_eq!(positive_count("3"), Ok(3));
        assert!(positive_count("0").is_err() && positive_count("-2").is_err());
        assert_eq!(bytes("8G"), Ok(8 << 30));
        assert_eq!(bytes("512MB"), Ok(512 << 20));
        assert_eq!(bytes("1000"), Ok(1000));
        for bad in ["0", "8X", "G", "-1G", "99999999999T"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Whatever is typed: no panic, an accepted value obeys its parser's rule, and an
        /// error quotes at most a bounded part of the input.
        #[test]
        fn no_input_panics_or_passes_what_it_should_not(s in "\\PC{0,300}") {
            for r in [positive_rate(&s), non_negative(&s), unit_interval(&s)] {
                match r {
                    Ok(v) => prop_assert!(v.is_finite() && v >= 0.0),
                    Err(e) => prop_assert!(e.chars().count() < 400, "{}", e),
                }
            }
            if let Ok(v) = positive_rate(&s) {
                prop_assert!(v > 0.0 && (v as f32) > 0.0);
            }
            if let Ok(v) = unit_interval(&s) {
                prop_assert!(v < 1.0);
            }
            match positive_count(&s) {
                Ok(v) => prop_assert!(v >= 1),
                Err(e) => prop_assert!(e.chars().count() < 400),
            }
            match bytes(&s) {
                Ok(v) => prop_assert!(v >= 1),
                Err(e) => prop_assert!(e.chars().count() < 400),
            }
        }

        /// Every number written back as text parses to itself where the rule allows it.
        #[test]
        fn numbers_round_trip(v in any::<f64>(), n in any::<usize>()) {
            let s = v.to_string();
            prop_assert_eq!(non_negative(&s).is_ok(), v.is_finite() && v >= 0.0 && (v as f32).is_finite());
            if let Ok(p) = positive_rate(&s) {
                prop_assert_eq!(p, v);
            }
            prop_assert_eq!(positive_count(&n.to_string()).is_ok(), n >= 1);
        }
    }
}
