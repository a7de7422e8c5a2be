//! The compile-time half of the template bounds: the constructs a field template may not use,
//! found by scanning its source the way minijinja's lexer splits it.
//!
//! minijinja offers no hook on its operators, and some of them allocate in one instruction what
//! no run-time check can stop: `[1] * 10**15` is a lazy sequence that any consumer materialises,
//! `"x" * 100000000` is 100 MB at once, and `~` formats whole sequences into a string. Statements
//! that bind or capture (`set`, `with`, `filter`, macros) let a value be fed back into itself, so
//! a handful of doublings reach gigabytes before fuel runs out. What remains after refusing these
//! is a language in which every value is built from the event and the source by a bounded
//! number of bounded steps:
//! - `*` (but not `**`) and `~` are refused; strings are joined by writing them side by side
//!   (`{{ a }} {{ b }}`) or with `+`, which only adds sizes;
//! - at most [`MAX_PLUS`] `+` per template, so a sum of strings stays a few times its parts;
//! - the only statements are `if`/`elif`/`else`/`endif` and `for`/`endfor`.

/// `+` operators one template may hold.
pub const MAX_PLUS: usize = 16;

const STATEMENTS: &[&str] = &["if", "elif", "else", "endif", "for", "endfor"];
const NO_STAR: &str = "`*` is not allowed in field templates: it can repeat a string or a list without bound";
const NO_TILDE: &str = "`~` is not allowed in field templates: write the pieces side by side, or join strings with `+`";

/// `Err` names the first construct the template may not use.
pub fn check(source: &str) -> Result<(), String> {
    let bytes = source.as_bytes();
    let mut plus = 0;
    let mut at = 0;
    while let Some(start) = find(bytes, at, |b| matches!(b, b"{{" | b"{%" | b"{#")) {
        let kind = bytes[start + 1];
        at = start + 2;
        if kind == b'#' {
            at = find(bytes, at, |b| b == b"#}").map_or(bytes.len(), |end| end + 2);
            continue;
        }
        if matches!(bytes.get(at), Some(b'-' | b'+')) {
            at += 1;
        }
        if kind == b'%' {
            let word = statement(&source[at..]);
            if !STATEMENTS.contains(&word) {
                return Err(format!("`{{% {word} %}}` is not allowed in field templates (only if and for)"));
            }
        }
        at = scan_code(bytes, at, if kind == b'{' { b'}' } else { b'%' }, &mut plus)?;
    }
    Ok(())
}

fn find(bytes: &[u8], from: usize, hit: impl Fn(&[u8]) -> bool) -> Option<usize> {
    (from..bytes.len().saturating_sub(1)).find(|&i| hit(&bytes[i..i + 2]))
}

fn statement(code: &str) -> &str {
    let code = code.trim_start();
    let end = code.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(code.len());
    &code[..end]
}

/// Scans one `{{ ... }}` or `{% ... %}` from just after its opening to just after its closing,
/// which, as in minijinja's lexer, only counts outside string literals and brackets.
fn scan_code(bytes: &[u8], mut at: usize, close: u8, plus: &mut usize) -> Result<usize, String> {
    let mut depth = 0isize;
    while at < bytes.len() {
        let next = bytes.get(at + 1).copied();
        let closes = |i: usize| bytes.get(i) == Some(&close) && bytes.get(i + 1) == Some(&b'}');
        match bytes[at] {
            b'-' | b'+' if depth == 0 && closes(at + 1) => return Ok(at + 3),
            _ if depth == 0 && closes(at) => return Ok(at + 2),
            quote @ (b'\'' | b'"') => at = skip_string(bytes, at + 1, quote),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'*' if next == Some(b'*') => at += 1,
            b'*' => return Err(NO_STAR.into()),
            b'~' => return Err(NO_TILDE.into()),
            b'+' => {
                *plus += 1;
                if *plus > MAX_PLUS {
                    return Err(format!("a field template may use `+` at most {MAX_PLUS} times"));
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(at)
}

/// Index of the closing quote (or the end); backslash escapes the next byte.
fn skip_string(bytes: &[u8], mut at: usize, quote: u8) -> usize {
    while at < bytes.len() && bytes[at] != quote {
        at += if bytes[at] == b'\\' { 2 } else { 1 };
    }
    at
}
