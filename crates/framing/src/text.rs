//! Text from a peer, made safe to print. A hello's agent or a refusal's reason ends up in log
//! lines, error messages and status pages; a line break in it could forge a log line, an
//! escape sequence could repaint an operator's terminal, a bidirectional override could make
//! text read backwards. Everything a peer says is passed through [`printable`] on decoding.

use std::fmt::Write;

/// `raw` as text that prints as one harmless line: invalid UTF-8 becomes U+FFFD, and control
/// and invisible formatting characters are written as escapes (`\n`, `\u{1b}`, `\u{202e}`).
pub fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.chars().all(is_printable_char) {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_printable_char(c) {
            out.push(c);
        } else {
            // `escape_debug` gives `\n`, `\r`, `\t` and `\u{…}` for the rest.
            let _ = write!(out, "{}", c.escape_debug());
        }
    }
    out
}

/// True when `text` has no control or invisible formatting character.
pub fn is_printable(text: &str) -> bool {
    text.chars().all(is_printable_char)
}

fn is_printable_char(c: char) -> bool {
    !c.is_control() && !is_format_char(c)
}

/// Unicode's invisible "format" characters (category Cf) that change how text around them is
/// shown: zero-width spaces and joiners, bidirectional marks, embeddings, overrides and
/// isolates, the byte-order mark.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_left_alone() {
        assert_eq!(printable("client/0.1 — ünïcödé".as_bytes()), "client/0.1 — ünïcödé");
    }

    #[test]
    fn control_and_format_characters_are_escaped() {
        let raw = "a\nb\r\x1b[31m\u{202e}\u{200b}\u{7f}";
        assert_eq!(printable(raw.as_bytes()), r"a\nb\r\u{1b}[31m\u{202e}\u{200b}\u{7f}");
        assert!(!is_printable(raw));
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(printable(b"ok\xff\xfe"), "ok\u{fffd}\u{fffd}");
    }
}
