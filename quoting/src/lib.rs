//! Quoting untrusted text in error messages.
//!
//! A reader that quotes what it found in a file ("bad feature value \"x\"") must not echo the
//! file whole: a hostile or corrupt file can put a 200 MB token on one line, and the error
//! would become a 200 MB line on stderr. Everything a reader of nndl (LIBSVM models in `svm`,
//! network files and checkpoints in `nn`, command-line values in `nndl`) quotes from a file
//! goes through [`quote`] or [`capped`], which keep the first [`QUOTE_LIMIT`] characters and
//! say how many were left out.
//! Its own crate so that the readers of every crate share it without one crate depending on
//! another for it (`nn` once took the whole of `mnist`, download stack included, for it).

/// At most this many characters of untrusted text are shown in a message.
pub const QUOTE_LIMIT: usize = 200;

/// `text` Debug-quoted (`"..."`, control characters escaped), cut to about [`QUOTE_LIMIT`]
/// characters with `... (N more characters)` after the closing quote when it was longer.
///
/// ```
/// assert_eq!(nndl_quoting::quote("a\tb"), "\"a\\tb\"");
/// let long = "x".repeat(1000);
/// assert!(nndl_quoting::quote(&long).ends_with("\"... (800 more characters)"));
/// ```
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(QUOTE_LIMIT.min(text.len()) + 40);
    out.push('"');
    let mut shown = 0;
    for (i, c) in text.char_indices() {
        // The escaped form counts against the limit: a line of control characters is as
        // long on screen as its escapes.
        let escaped: String = match c {
            // str's Debug leaves a single quote alone; char's escape_debug would not.
            '\'' => "'".to_string(),
            _ => c.escape_debug().collect(),
        };
        if shown + escaped.chars().count() > QUOTE_LIMIT {
            out.push('"');
            out.push_str(&more(&text[i..]));
            return out;
        }
        shown += escaped.chars().count();
        out.push_str(&escaped);
    }
    out.push('"');
    out
}

/// `text` as it is (already formatted by the caller, e.g. a list of numbers), cut to
/// [`QUOTE_LIMIT`] characters with `... (N more characters)` when it was longer.
///
/// ```
/// assert_eq!(nndl_quoting::capped("[1, 2]"), "[1, 2]");
/// let long = format!("{:?}", vec![7u8; 1000]);
/// assert!(nndl_quoting::capped(&long).contains("... (2800 more characters)"));
/// ```
pub fn capped(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        None => text.to_string(),
        Some((i, _)) => format!("{}{}", &text[..i], more(&text[i..])),
    }
}

/// `... (N more characters)` for the part of the text left out.
fn more(rest: &str) -> String {
    match rest.chars().count() {
        1 => "... (1 more character)".to_string(),
        n => format!("... ({n} more characters)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("it's \"x\""), format!("{:?}", "it's \"x\""));
        assert_eq!(quote("é\n"), format!("{:?}", "é\n"));
        assert_eq!(capped(""), "");
        assert_eq!(capped(&"y".repeat(QUOTE_LIMIT)), "y".repeat(QUOTE_LIMIT));
    }

    #[test]
    fn long_text_is_cut_and_the_rest_counted() {
        let q = quote(&"é".repeat(QUOTE_LIMIT + 7));
        assert_eq!(
            q,
            format!("\"{}\"... (7 more characters)", "é".repeat(QUOTE_LIMIT))
        );
        // Escapes count against the limit: 1000 NULs give a short line.
        let q = quote(&"\0".repeat(1000));
        assert!(q.len() < QUOTE_LIMIT + 40, "{q}");
        assert!(q.ends_with("\"... (900 more characters)"), "{q}");
        let c = capped(&"z".repeat(QUOTE_LIMIT + 1));
        assert_eq!(
            c,
            format!("{}... (1 more character)", "z".repeat(QUOTE_LIMIT))
        );
    }
}
