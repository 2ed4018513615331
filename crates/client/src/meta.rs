//! A frame's metadata (the data a drone sends along with it, `--meta-from`) as the client
//! hands it on: one JSON line per frame for `--print-meta` and the `--record` sidecar, and a
//! short ASCII line for the window's `--show-meta`.
//!
//! ```json
//! {"seq":41,"capture_us":1700000000123456,"fresh":true,"meta":{"alt":12.5}}
//! ```
//!
//! `meta` is the frame's metadata itself when it is JSON (embedded as it came, not re-encoded:
//! numbers keep their digits, keys their order), a JSON string when it is UTF-8 text but not
//! JSON, and `null` when the frame has none. Metadata that is not UTF-8 comes as `null` with
//! a `meta_base64` field beside it. `fresh` is the frame's [`framing::flags::META_FRESH`]: true
//! when the metadata is new since the source's previous frame, false when it is repeated.

use base64::Engine;
use framing::Frame;
use serde::Serialize;
use serde_json::value::RawValue;

/// One frame's metadata as a JSON line (see the module documentation).
#[derive(Debug, Serialize)]
struct Line<'a> {
    seq: u64,
    capture_us: u64,
    fresh: bool,
    meta: Meta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_base64: Option<String>,
}

/// What `meta` holds.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Meta<'a> {
    /// JSON, embedded as it came.
    Json(&'a RawValue),
    /// JSON that had line breaks between its tokens, with them turned into spaces.
    Flattened(Box<RawValue>),
    /// UTF-8 text that is not JSON, as a JSON string.
    Text(&'a str),
    /// None, or not UTF-8.
    Null,
}

/// `frame`'s sequence number, capture time, freshness and metadata as one line of JSON,
/// without the newline. The line never contains one, so a reader can split output into
/// lines and parse each on its own.
pub fn json_line(frame: &Frame) -> String {
    let header = frame.header();
    let raw = frame.meta();
    let (meta, meta_base64) = match std::str::from_utf8(raw) {
        Ok("") => (Meta::Null, None),
        Ok(text) => (as_json(text), None),
        Err(_) => (Meta::Null, Some(base64::engine::general_purpose::STANDARD.encode(raw))),
    };
    let line = Line {
        seq: header.seq,
        capture_us: header.capture_us,
        fresh: frame.meta_is_fresh(),
        meta,
        meta_base64,
    };
    // Serialising numbers, strings and already-checked raw JSON cannot fail; should it
    // anyway, say so in the line rather than break the output.
    serde_json::to_string(&line)
        .unwrap_or_else(|err| format!(r#"{{"seq":{},"error":{:?}}}"#, header.seq, err.to_string()))
}

/// `text` as JSON if it is JSON, else as a string.
fn as_json(text: &str) -> Meta<'_> {
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else { return Meta::Text(text) };
    // Inside a JSON string a line break must be escaped, so one found in valid JSON lies
    // between tokens, where a space means the same.
    if !raw.get().contains(['\n', '\r']) {
        return Meta::Json(raw);
    }
    let flat = raw.get().replace(['\n', '\r'], " ");
    match RawValue::from_string(flat) {
        Ok(flat) => Meta::Flattened(flat),
        Err(_) => Meta::Text(text),
    }
}

/// `meta` as one short line of printable ASCII for the window: runs of whitespace become one
/// space, other control and non-ASCII characters escapes (`\u{e9}`); cut to `max` characters,
/// ending in `...` when cut. Empty when there is no metadata.
pub fn ascii_line(meta: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(meta);
    let mut out = String::new();
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if std::mem::take(&mut space) {
            out.push(' ');
        }
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        // ASCII only: any byte index is a character boundary.
        if max > 3 {
            out.truncate(max - 3);
            out.push_str("...");
        } else {
            out.truncate(max);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use framing::{Encoding, FrameHeader, flags::META_FRESH};

    fn frame(flags: u16, meta: &[u8]) -> Frame {
        let header =
            FrameHeader { seq: 7, capture_us: 99, encoding: Encoding::Jpeg, width: 1, height: 1 };
        Frame::with_flags(header, flags, meta, Bytes::from_static(b"jpeg"))
    }

    fn parsed(line: &str) -> serde_json::Value {
        assert!(!line.contains('\n'), "a line break in {line:?}");
        serde_json::from_str(line).expect("the line is JSON")
    }

    #[test]
    fn json_is_embedded_as_it_came() {
        let line = json_line(&frame(META_FRESH, br#" {"alt":12.50,"z":1,"a":[true]} "#));
        assert_eq!(
            line,
            r#"{"seq":7,"capture_us":99,"fresh":true,"meta":{"alt":12.50,"z":1,"a":[true]}}"#
        );
    }

    #[test]
    fn text_empty_and_binary_metadata() {
        let text = parsed(&json_line(&frame(0, b"alt=3 \"quoted\"")));
        assert_eq!(text["meta"], "alt=3 \"quoted\"");
        assert_eq!(text["fresh"], false);
        let none = parsed(&json_line(&frame(0, b"")));
        assert!(none["meta"].is_null() && none.get("meta_base64").is_none(), "{none}");
        let binary = parsed(&json_line(&frame(0, b"\xff\x00")));
        assert!(binary["meta"].is_null());
        assert_eq!(binary["meta_base64"], "/wA=");
    }

    #[test]
    fn line_breaks_never_split_a_line() {
        let pretty = parsed(&json_line(&frame(0, b"{\r\n  \"a\": \"x\\ny\",\n  \"b\": 2\n}")));
        assert_eq!(pretty["meta"], serde_json::json!({"a": "x\ny", "b": 2}));
        let text = parsed(&json_line(&frame(0, b"line one\nline two")));
        assert_eq!(text["meta"], "line one\nline two");
    }

    #[test]
    fn the_window_line_is_short_ascii() {
        assert_eq!(
            ascii_line(b"{\"a\":  1,\n \"b\":\"\xc3\xa9\"}", 80),
            r#"{"a": 1, "b":"\u{e9}"}"#
        );
        assert_eq!(ascii_line(b"abcdefghij", 8), "abcde...");
        assert_eq!(ascii_line(b"abcdefgh", 8), "abcdefgh");
        assert_eq!(ascii_line(b"\xe9 \x1b", 40), r"\u{fffd} \u{1b}");
        assert_eq!(ascii_line(b"", 10), "");
        assert_eq!(ascii_line(b"abc", 2), "ab");
    }
}
